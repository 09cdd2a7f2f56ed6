"""FCPE pitch estimator with the trained weights the ``torchfcpe`` wheel ships.

The ``torchfcpe`` package itself cannot be imported here (it imports torchaudio and
local_attention at the top), so only its weights file is used: found through the package's
import spec without running the package, read with ``weights_only=True``. The network is
written here from its published architecture (config ``CFNaiveMelPE``, conv-only variant):

- log-mel: 128 Slaney-scale bands 0-8 kHz of 16 kHz audio, window 1024 (periodic Hann),
  hop 160, the signal reflect-padded by 432 samples on both sides and framed without centring,
  magnitude sqrt(re^2 + im^2 + 1e-9), natural log clamped at 1e-5; F = N // 160 + 1 frames
  (the last frame repeated when the framing yields one fewer);
- input stack: Conv1d(128 -> 512, k3) -> GroupNorm(4) -> LeakyReLU(0.01) -> Conv1d(k3);
- 6 residual conformer convolution modules: LayerNorm -> 1x1 conv to 2048 -> GLU ->
  depthwise conv k31 -> SiLU -> 1x1 conv back to 512;
- LayerNorm -> weight-normed Linear(512 -> 360) -> sigmoid: a salience over 360 bins spread
  evenly in cents from 32.70 to 1975.5 Hz;
- decode ("local argmax"): salience-weighted mean of the 9 bins around the peak (indices
  clamped at the table's ends), float32; frames whose peak is at or below the threshold
  (0.006 in RVC) are unvoiced (0 Hz).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voicegui.voices.rvc.mel import mel_filterbank
from voicegui.voices.rvc.weights_file import read_weights_file
from voicegui.voices.seedvc.checkpoints import CheckpointError, load_into

WHAT = "FCPE pitch model"
BUNDLED_PACKAGE = "torchfcpe"
BUNDLED_FILE = "assets/fcpe_c_v001.pt"
THRESHOLD = 0.006  # RVC's voicing threshold on the peak salience
LOCAL = 4  # bins on each side of the peak in the weighted mean
CLIP = 1e-5


def bundled_weights_path() -> Path:
    """The weights file inside the installed ``torchfcpe`` wheel (the package is not run), or
    where the full bundle keeps it (``torchfcpe/assets/`` next to the app's resources)."""
    import sys

    frozen = getattr(sys, "_MEIPASS", None)
    if frozen and (Path(frozen) / BUNDLED_PACKAGE / BUNDLED_FILE).is_file():
        return Path(frozen) / BUNDLED_PACKAGE / BUNDLED_FILE
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"{WHAT}: the '{BUNDLED_PACKAGE}' package (which ships the FCPE weights) is not "
            "installed; install it with: pip install --no-deps torchfcpe"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise CheckpointError(f"{WHAT}: {path} is missing from the installed {BUNDLED_PACKAGE}")
    return path


# ------------------------------------------------------------------------------------ mel


class FcpeMel:
    """Log-mel front end: (B, N) 16 kHz -> (B, N // hop + 1, n_mels)."""

    def __init__(self, sr: int, n_mels: int, n_fft: int, win: int, hop: int, fmin, fmax):
        if n_fft != win:
            raise CheckpointError(f"{WHAT}: window {win} != FFT size {n_fft} is not supported")
        self.sr, self.n_fft, self.hop = sr, n_fft, hop
        fmax = sr / 2 if fmax is None else fmax
        self.basis = torch.from_numpy(mel_filterbank(sr, n_fft, n_mels, fmin or 0, fmax, False))
        self.window = torch.hann_window(win)

    def frames(self, samples: int) -> int:
        return samples // self.hop + 1

    def __call__(self, wav: Tensor) -> Tensor:
        if wav.dim() == 1:
            wav = wav[None]
        wav = wav if wav.dtype == torch.float64 else wav.float()  # float64: test reference
        n = wav.shape[-1]
        left = (self.n_fft - self.hop) // 2
        right = max((self.n_fft - self.hop + 1) // 2, self.n_fft - n - left)
        # reflection needs more samples than the padding; a very short clip is zero padded
        mode = "reflect" if right < n else "constant"
        x = F.pad(wav[:, None], (left, right), mode=mode)[:, 0]
        window = self.window.to(x.device, x.dtype)
        spec = torch.stft(
            x, self.n_fft, hop_length=self.hop, win_length=self.n_fft, window=window,
            center=False, return_complex=True,
        )  # fmt: skip
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        mel = torch.log(torch.clamp(torch.matmul(self.basis.to(x.device, x.dtype), mag), min=CLIP))
        mel = mel.transpose(-1, -2)
        want = self.frames(n)
        if mel.shape[1] < want:
            mel = torch.cat((mel, mel[:, -1:].expand(-1, want - mel.shape[1], -1)), 1)
        return mel[:, :want]


# ------------------------------------------------------------------------------------ network


class _Depthwise(nn.Module):
    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)


class _ConvModule(nn.Module):
    """Conformer convolution module (the file's indices name its parts: net.0/2/4/6)."""

    def __init__(self, dim: int, expansion: int = 2, kernel: int = 31):
        super().__init__()
        inner = dim * expansion
        self.net = nn.ModuleDict(
            {
                "0": nn.LayerNorm(dim),
                "2": nn.Conv1d(dim, inner * 2, 1),
                "4": _Depthwise(inner, kernel),
                "6": nn.Conv1d(inner, dim, 1),
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.net["0"](x).transpose(1, 2)
        y = F.glu(self.net["2"](y), dim=1)
        y = F.silu(self.net["4"].conv(y))
        return self.net["6"](y).transpose(1, 2)


class _Layer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conformer = _ConvModule(dim)
        self.norm = nn.LayerNorm(dim)  # the attention's pre-norm; stored, unused conv-only

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conformer(x)


class _Net(nn.Module):
    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.encoder_layers = nn.ModuleList(_Layer(dim) for _ in range(layers))


class FcpeModel(nn.Module):
    """Mel (B, T, n_mels) -> salience (B, T, bins)."""

    def __init__(self, n_mels: int = 128, bins: int = 360, hidden: int = 512, layers: int = 6):
        super().__init__()
        self.input_stack = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 3, 1, 1),
            nn.GroupNorm(4, hidden),
            nn.LeakyReLU(),
            nn.Conv1d(hidden, hidden, 3, 1, 1),
        )
        self.net = _Net(hidden, layers)
        self.norm = nn.LayerNorm(hidden)
        self.output_proj = nn.Linear(hidden, bins)  # weight norm folded in at load time
        self.register_buffer("cent_table", torch.zeros(bins))
        self.register_buffer("gaussian_blurred_cent_mask", torch.zeros(()))  # training only
        self.eval()

    def logits(self, mel: Tensor) -> Tensor:
        x = self.input_stack(mel.transpose(1, 2)).transpose(1, 2)
        for layer in self.net.encoder_layers:
            x = layer(x)
        return self.output_proj(self.norm(x))

    @torch.inference_mode()
    def salience(self, mel: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(mel))

    @torch.inference_mode()
    def decode(self, salience: Tensor, threshold: float = THRESHOLD) -> Tensor:
        """(B, T, bins) -> (B, T, 1) f0 in Hz, 0 where the peak salience <= threshold."""
        bins = salience.shape[-1]
        peak, arg = torch.max(salience, dim=-1, keepdim=True)
        index = (torch.arange(2 * LOCAL + 1, device=arg.device) + (arg - LOCAL)).clamp(0, bins - 1)
        table = self.cent_table[None, None, :].expand_as(salience)
        w = torch.gather(salience, -1, index)
        cents = torch.sum(torch.gather(table, -1, index) * w, -1, keepdim=True) / torch.sum(
            w, -1, keepdim=True
        )
        cents = cents.masked_fill(peak <= threshold, float("-inf"))  # 2**-inf -> 0 Hz
        return 10.0 * 2 ** (cents / 1200.0)


class Fcpe:
    """f0 of 16 kHz audio: ``f0(wav)`` -> (N // 160 + 1,) Hz, float32, 0 = unvoiced."""

    def __init__(self, model: FcpeModel, mel: FcpeMel, threshold: float = THRESHOLD):
        self.model, self.mel, self.threshold = model, mel, threshold

    @property
    def device(self) -> torch.device:
        return self.model.cent_table.device

    @torch.inference_mode()
    def f0_tensor(self, wav16k: Tensor) -> Tensor:
        """(B, N) -> (B, N // 160 + 1, 1) Hz, as torchfcpe's ``infer`` returns it."""
        mel = self.mel(wav16k.to(self.device))
        return self.model.decode(self.model.salience(mel), self.threshold)

    def f0(self, wav16k: Tensor | np.ndarray) -> np.ndarray:
        wav = wav16k if torch.is_tensor(wav16k) else torch.from_numpy(np.asarray(wav16k))
        return self.f0_tensor(wav.reshape(1, -1)).reshape(-1).cpu().numpy()


def _config(obj: Mapping) -> tuple[Mapping, Mapping]:
    cfg = obj.get("config_dict")
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("model"), Mapping):
        raise CheckpointError(f"{WHAT}: the file has no model config (config_dict)")
    model, mel = cfg["model"], cfg.get("mel") or {}
    if model.get("type") != "CFNaiveMelPE":
        raise CheckpointError(f"{WHAT}: model type {model.get('type')!r} is not CFNaiveMelPE")
    if not model.get("conv_only", False) or model.get("use_harmonic_emb", False):
        raise CheckpointError(
            f"{WHAT}: only the conv-only FCPE (the weights torchfcpe bundles) is supported"
        )
    return model, mel


@lru_cache(maxsize=2)
def _cached(path: str, device: str) -> Fcpe:
    return _load(Path(path), device)


def _load(path: Path, device: str | torch.device) -> Fcpe:
    obj = read_weights_file(path, WHAT)
    model_cfg, mel_cfg = _config(obj)
    state = obj.get("model")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{WHAT}: {path.name} has no model weights")
    state = dict(state)
    g, v = state.pop("output_proj.weight_g", None), state.pop("output_proj.weight_v", None)
    if g is None or v is None:
        raise CheckpointError(f"{WHAT}: {path.name} lacks output_proj.weight_g/weight_v")
    # weight norm per output row (dim 0), folded once: v * (g / ||v||)
    state["output_proj.weight"] = torch._weight_norm(v.float(), g.float(), 0)
    n_mels = int(mel_cfg.get("num_mels", 128))
    model = FcpeModel(
        n_mels=n_mels,
        bins=int(model_cfg.get("out_dims", 360)),
        hidden=int(model_cfg.get("hidden_dims", 512)),
        layers=int(model_cfg.get("n_layers", 6)),
    )
    load_into(model, state, what=WHAT)
    mel = FcpeMel(
        int(mel_cfg.get("sr", 16000)),
        n_mels,
        int(mel_cfg.get("n_fft", 1024)),
        int(mel_cfg.get("win_size", 1024)),
        int(mel_cfg.get("hop_size", 160)),
        mel_cfg.get("fmin", 0),
        mel_cfg.get("fmax", 8000),
    )
    return Fcpe(model.to(device).eval(), mel)


def load_fcpe(path: str | Path | None = None, device: str | torch.device = "cpu") -> Fcpe:
    """FCPE from ``path`` or, by default, from the weights the torchfcpe wheel ships."""
    if path is None:
        return _cached(str(bundled_weights_path()), str(device))
    return _load(Path(path), device)
