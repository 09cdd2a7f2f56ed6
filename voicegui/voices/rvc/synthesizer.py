"""The RVC synthesizer (v1 256-d / v2 768-d features, with or without pitch), inference only.

features (B, T, C) [+ coarse pitch, f0 in Hz] -> prior encoder -> z_p = m_p + exp(logs_p) *
0.66666 * noise -> reverse flow -> decoder -> waveform at the model rate, ``upp`` samples per
frame. For streaming, ``skip_head`` frames of left context are encoded but not decoded (the
flow still sees up to 24 of them) and ``return_length`` frames are decoded; ``return_length2``
stretches the decoded frames (formant shift).

Every random draw can be injected (``SynthNoise``); otherwise it comes from a generator the
model owns, seeded, so runs repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import SynthConfig
from .flow import ReverseFlow
from .nsf import Generator
from .text_encoder import TextEncoder

PRIOR_SCALE = 0.66666  # the sampling temperature of the prior, as RVC uses it
FLOW_CONTEXT = 24  # frames before skip_head that the flow still sees when streaming
DEFAULT_SEED = 0


@dataclass
class SynthNoise:
    """The random draws of one synthesizer call (None: drawn by the model).

    z: standard normal, (B, inter_channels, frames after the flow's head cut).
    sine: standard normal, one value per decoded sample (frames * upp), any shape.
    phase: the sine's initial phase draw; RVC discards it for the fundamental (the only
        harmonic it uses), so it has no effect and is accepted for completeness.
    """

    z: Tensor | None = None
    sine: Tensor | None = None
    phase: Tensor | None = None


@dataclass
class SynthOutput:
    audio: Tensor  # (B, 1, samples)
    m_p: Tensor
    logs_p: Tensor
    z: Tensor  # the decoder's input (after the streaming cut)


class Synthesizer(nn.Module):
    """SynthesizerTrnMs{256,768}NSFsid and their no-pitch variants, built from a SynthConfig."""

    def __init__(self, config: SynthConfig, seed: int = DEFAULT_SEED) -> None:
        super().__init__()
        self.config = config
        c = config
        self.enc_p = TextEncoder(
            c.feature_dim,
            c.inter_channels,
            c.hidden_channels,
            c.filter_channels,
            c.n_heads,
            c.n_layers,
            c.kernel_size,
            f0=c.f0,
        )
        self.dec = Generator(
            c.inter_channels,
            c.resblock,
            c.resblock_kernel_sizes,
            c.resblock_dilation_sizes,
            c.upsample_rates,
            c.upsample_initial_channel,
            c.upsample_kernel_sizes,
            c.gin_channels,
            sample_rate=c.sample_rate if c.f0 else None,
        )
        self.flow = ReverseFlow(c.inter_channels, c.hidden_channels, 5, 3, 4, gin=c.gin_channels)
        self.emb_g = nn.Embedding(c.spk_embed_dim, c.gin_channels)
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self.eval()

    def set_trunk_dtype(self, dtype: torch.dtype) -> Synthesizer:
        """Encoder, flow and decoder convolutions in ``dtype`` (bf16/fp16 on fast hardware). The
        sine source stays float32: its phase is a running sum over thousands of cycles, which a
        16-bit float would round into a wrong waveform. So does the last convolution (one
        output channel, cheap): the waveform itself is not rounded to 8 significant bits."""
        self.to(dtype)
        if self.dec.m_source is not None:
            self.dec.m_source.float()
        self.dec.conv_post.float()
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.emb_g.weight.dtype

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def upp(self) -> int:
        return self.config.upp

    @property
    def f0(self) -> bool:
        return self.config.f0

    # ---------------------------------------------------------------- random draws

    def reset_rng(self, seed: int | None = None) -> None:
        if seed is not None:
            self._seed = seed
        self._generators.clear()

    @staticmethod
    def fresh_noise(seed: int) -> tuple[int, dict]:
        """A noise source of its own (for ``infer(rng=...)``: a stream's, when streams share
        the model) that draws what ``reset_rng(seed)`` would."""
        return seed, {}

    def _randn(self, shape: tuple[int, ...], like: Tensor, rng: tuple | None = None) -> Tensor:
        seed, generators = rng if rng is not None else (self._seed, self._generators)
        gen = generators.get(like.device)
        if gen is None:
            gen = torch.Generator(device=like.device)
            gen.manual_seed(seed)
            generators[like.device] = gen
        return torch.randn(shape, generator=gen, device=like.device, dtype=torch.float32).to(
            like.dtype
        )

    # ---------------------------------------------------------------- inference

    def speaker(self, sid: int | Tensor, like: Tensor) -> Tensor:
        """(B, gin, 1) speaker embedding."""
        if not isinstance(sid, Tensor):
            n = self.emb_g.num_embeddings
            if not 0 <= int(sid) < n:
                raise ValueError(f"speaker id {sid} out of range: this model has {n} speakers")
            sid = torch.tensor([int(sid)], device=like.device)
        return self.emb_g(sid).unsqueeze(-1)

    def synthesize(
        self,
        phone: Tensor,
        pitch: Tensor | None,
        nsff0: Tensor | None,
        g: Tensor,
        z_noise: Tensor | None,
        sine_noise: Tensor | None,
        skip_head: int | Tensor | None = None,
        return_length: int | Tensor | None = None,
        return_length2: int | Tensor | None = None,
    ) -> SynthOutput:
        """The graph itself. Streaming arguments may be Python ints or 0-d tensors (a traced
        export keeps tensors as inputs); missing noise is drawn with randn_like (the draw an
        export records as a random node)."""
        streaming = skip_head is not None and return_length is not None
        head = 0
        if streaming:
            if isinstance(skip_head, Tensor):
                head = torch.clamp(skip_head - FLOW_CONTEXT, min=0)
            else:
                head = max(int(skip_head) - FLOW_CONTEXT, 0)
        m_p, logs_p = self.enc_p(phone, pitch if self.f0 else None, head)
        zn = torch.randn_like(m_p) if z_noise is None else z_noise.to(m_p.dtype)
        z_p = m_p + torch.exp(logs_p) * zn * PRIOR_SCALE
        z = self.flow(z_p, g)
        f0 = nsff0
        if streaming:
            start = skip_head - head
            z = z[:, :, start : start + return_length]
            if f0 is not None:
                f0 = f0[:, skip_head : skip_head + return_length]
        if f0 is not None:
            f0 = f0.float()  # the sine source integrates it: float32 whatever the trunk's dtype
        n_res = return_length2 if streaming else None
        audio = self.dec(z, g, f0 if self.f0 else None, sine_noise, n_res=n_res)
        return SynthOutput(audio=audio, m_p=m_p, logs_p=logs_p, z=z)

    def forward(self, phone, pitch, nsff0, sid, skip_head, return_length, return_length2):
        """Tensor-only entry for tracing (noise drawn inside the graph)."""
        g = self.emb_g(sid).unsqueeze(-1)
        return self.synthesize(
            phone, pitch, nsff0, g, None, None, skip_head, return_length, return_length2
        ).audio

    @torch.inference_mode()
    def infer(
        self,
        phone: Tensor,
        pitch: Tensor | None = None,
        nsff0: Tensor | None = None,
        sid: int | Tensor = 0,
        *,
        skip_head: int | None = None,
        return_length: int | None = None,
        return_length2: int | None = None,
        noise: SynthNoise | None = None,
        rng: tuple | None = None,
    ) -> SynthOutput:
        """phone (B, T, C) features at 100 frames/s; pitch (B, T) coarse 1..255 and nsff0 (B, T)
        Hz for pitch-conditioned models. With ``skip_head``/``return_length`` only frames
        [skip_head, skip_head + return_length) are decoded. Noise not given in ``noise`` is
        drawn from ``rng`` (``fresh_noise``), or from the model's own generators."""
        noise = noise or SynthNoise()
        if self.f0 and (pitch is None or nsff0 is None):
            raise ValueError("this voice model is pitch-conditioned: pass pitch and nsff0")
        device = self.emb_g.weight.device
        phone = phone.to(device, self.emb_g.weight.dtype)
        pitch = pitch.to(device) if pitch is not None else None
        nsff0 = nsff0.to(device) if nsff0 is not None else None
        if noise.z is not None or noise.sine is not None:
            noise = SynthNoise(
                z=noise.z.to(device) if noise.z is not None else None,
                sine=noise.sine.to(device) if noise.sine is not None else None,
                phase=noise.phase,
            )
        t = phone.shape[1]
        if pitch is not None and pitch.shape[-1] != t or nsff0 is not None and nsff0.shape[-1] != t:
            raise ValueError("features, pitch and f0 must have the same number of frames")
        g = self.speaker(sid, phone)
        streaming = skip_head is not None and return_length is not None
        head = max(int(skip_head) - FLOW_CONTEXT, 0) if streaming else 0
        n = int(return_length) if streaming else t
        zn = noise.z
        if zn is None:
            zn = self._randn((phone.shape[0], self.config.inter_channels, t - head), phone, rng)
        sine = None
        if self.f0:
            n_samples = phone.shape[0] * n * self.upp
            sine = noise.sine if noise.sine is not None else self._randn((n_samples,), nsff0, rng)
            if sine.numel() != n_samples:
                raise ValueError(f"sine noise has {sine.numel()} values, expected {n_samples}")
        return self.synthesize(
            phone,
            pitch,
            nsff0,
            g,
            zn,
            sine,
            skip_head if streaming else None,
            return_length if streaming else None,
            return_length2 if streaming and return_length2 is not None else None,
        )
