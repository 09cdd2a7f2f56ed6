"""The synthesizer's hyper-parameters, read from the 18-item ``config`` list RVC stores in a
voice model file.

The list is positional: [spec_channels, segment_size, inter_channels, hidden_channels,
filter_channels, n_heads, n_layers, kernel_size, p_dropout, resblock, resblock_kernel_sizes,
resblock_dilation_sizes, upsample_rates, upsample_initial_channel, upsample_kernel_sizes,
spk_embed_dim, gin_channels, sampling_rate]. The first two and the dropout only matter to
training. The file's own metadata (version v1/v2, f0 or not) completes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIG_ITEMS = 18
# Feature width of the content encoder each version was trained on: v1 = HuBERT's final_proj
# (256), v2 = HuBERT/ContentVec's last hidden state (768).
FEATURE_DIMS = {"v1": 256, "v2": 768}
RATE_NAMES = {"32k": 32000, "40k": 40000, "48k": 48000}


class ConfigError(ValueError):
    """The config list of a voice model file does not describe a synthesizer we can build."""


def _ints(value, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is not a list of integers: {value!r}") from exc
    if not out or any(v <= 0 for v in out):
        raise ConfigError(f"{what} must hold positive integers: {value!r}")
    return out


def _int(value, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{what} is not an integer: {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is not an integer: {value!r}") from exc
    if out != value or out <= 0:
        raise ConfigError(f"{what} must be a positive integer: {value!r}")
    return out


def parse_rate(value) -> int:
    """A sampling rate as RVC writes it: 40000, or the names '32k', '40k', '48k'."""
    if isinstance(value, str):
        if value in RATE_NAMES:
            return RATE_NAMES[value]
        try:
            value = int(value)
        except ValueError as exc:
            raise ConfigError(f"unknown sampling rate {value!r}") from exc
    return _int(value, "sampling rate")


@dataclass(frozen=True)
class SynthConfig:
    """Everything the inference graph depends on."""

    feature_dim: int  # 256 (v1) or 768 (v2)
    f0: bool  # pitch-conditioned (NSF decoder with a sine source) or not
    sample_rate: int
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (12, 10, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (24, 20, 4, 4)
    spk_embed_dim: int = 109
    gin_channels: int = 256

    @property
    def upp(self) -> int:
        """Output samples per synthesizer frame (frames run at 100 per second)."""
        return math.prod(self.upsample_rates)

    @property
    def version(self) -> str:
        return "v1" if self.feature_dim == 256 else "v2"

    @classmethod
    def from_list(cls, items: Sequence, *, feature_dim: int, f0: bool) -> SynthConfig:
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise ConfigError(f"config is a {type(items).__name__}, not a list")
        if len(items) != CONFIG_ITEMS:
            raise ConfigError(f"config has {len(items)} items, expected {CONFIG_ITEMS}")
        resblock = str(items[9])
        if resblock not in ("1", "2"):
            raise ConfigError(f"unknown residual block type {items[9]!r} (expected '1' or '2')")
        dilations = tuple(_ints(d, "resblock_dilation_sizes entry") for d in items[11])
        cfg = cls(
            feature_dim=int(feature_dim),
            f0=bool(f0),
            sample_rate=parse_rate(items[17]),
            inter_channels=_int(items[2], "inter_channels"),
            hidden_channels=_int(items[3], "hidden_channels"),
            filter_channels=_int(items[4], "filter_channels"),
            n_heads=_int(items[5], "n_heads"),
            n_layers=_int(items[6], "n_layers"),
            kernel_size=_int(items[7], "kernel_size"),
            resblock=resblock,
            resblock_kernel_sizes=_ints(items[10], "resblock_kernel_sizes"),
            resblock_dilation_sizes=dilations,
            upsample_rates=_ints(items[12], "upsample_rates"),
            upsample_initial_channel=_int(items[13], "upsample_initial_channel"),
            upsample_kernel_sizes=_ints(items[14], "upsample_kernel_sizes"),
            spk_embed_dim=_int(items[15], "spk_embed_dim"),
            gin_channels=_int(items[16], "gin_channels"),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError(
                f"{len(self.upsample_rates)} upsample rates but "
                f"{len(self.upsample_kernel_sizes)} upsample kernel sizes"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError("resblock kernel sizes and dilation sizes differ in number")
        if self.hidden_channels % self.n_heads:
            raise ConfigError(
                f"{self.hidden_channels} channels do not split into {self.n_heads} heads"
            )
        if self.inter_channels % 2:
            raise ConfigError("inter_channels must be even (the flow splits it in halves)")
        if self.upsample_initial_channel >> len(self.upsample_rates) < 1:
            raise ConfigError("too many upsampling stages for the initial channel count")
        if self.sample_rate % 100:
            raise ConfigError(f"sampling rate {self.sample_rate} is not a multiple of 100 Hz")
        if self.upp != self.sample_rate // 100:
            raise ConfigError(
                f"upsample rates {list(self.upsample_rates)} give {self.upp} samples per frame, "
                f"but {self.sample_rate} Hz needs {self.sample_rate // 100} (100 frames/s)"
            )
