"""HiFT vocoder (CosyVoice HiFTGenerator at 22.05 kHz), inference only.

mel (B, 80, T) -> waveform (B, 256*T). An f0 predictor estimates the pitch per mel frame; a
neural source filter turns it into a harmonic + noise excitation; the excitation's short STFT is
fused into a HiFi-GAN style upsampler whose last layer predicts an (n_fft 16, hop 4) spectrogram
that an inverse STFT turns into samples.

Checkpoints store old-style weight norm (weight_g / weight_v); the loader folds it into plain
weights once so inference runs bare convolutions. The random draws of the sine generator
(harmonic phases, additive noise) can be injected for reproducible runs; otherwise they come
from a seeded generator owned by the model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import CheckpointError, find_state_dict, load_into, read_checkpoint

SAMPLE_RATE = 22050
N_MELS = 80
BASE_CHANNELS = 512
N_HARMONICS = 9  # fundamental + 8 overtones
UPSAMPLE_RATES = (8, 8)
UPSAMPLE_KERNELS = (16, 16)
RESBLOCK_KERNELS = (3, 7, 11)
RESBLOCK_DILATIONS = (1, 3, 5)
SOURCE_RESBLOCK_KERNELS = (7, 11)
ISTFT_NFFT = 16
ISTFT_HOP = 4
HOP = math.prod(UPSAMPLE_RATES) * ISTFT_HOP  # 256 samples per mel frame
LRELU_SLOPE = 0.1
SINE_AMP = 0.1
NOISE_STD = 0.003
VOICED_THRESHOLD = 10.0  # Hz
AUDIO_LIMIT = 0.99
DEFAULT_SEED = 0


class Snake(nn.Module):
    """x + sin(alpha x)^2 / alpha, per channel (alpha stored linearly)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        a = self.alpha[None, :, None]
        return x + (1.0 / (a + 1e-9)) * torch.sin(x * a).pow(2)


class ResBlock(nn.Module):
    """Three (Snake, dilated conv, Snake, conv) residual units with dilations 1/3/5."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2, a1, a2 in zip(
            self.convs1, self.convs2, self.activations1, self.activations2, strict=True
        ):
            x = x + c2(a2(c1(a1(x))))
        return x


class ConvRNNF0Predictor(nn.Module):
    """mel (B, 80, T) -> f0 in Hz (B, T): five conv+ELU layers, a linear head, abs()."""

    def __init__(self, in_channels: int = N_MELS, channels: int = 512, layers: int = 5) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Conv1d(in_channels if i == 0 else channels, channels, 3, padding=1)]
            mods += [nn.ELU()]
        self.condnet = nn.Sequential(*mods)
        self.classifier = nn.Linear(channels, 1)

    def forward(self, mel: Tensor) -> Tensor:
        h = self.condnet(mel).transpose(1, 2)
        return torch.abs(self.classifier(h)[..., 0])


class SourceModule(nn.Module):
    """Neural source filter: f0 per sample -> tanh(linear mix of 9 noisy harmonics)."""

    def __init__(self) -> None:
        super().__init__()
        self.l_linear = nn.Linear(N_HARMONICS, 1)
        self.register_buffer(
            "harmonics",
            torch.arange(1, N_HARMONICS + 1, dtype=torch.float32)[None, :, None],
            persistent=False,
        )

    def sine_waves(self, f0_up: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        """f0_up (B, N) Hz per sample, phase (B, 9, 1), noise (B, 9, N) -> (B, 9, N)."""
        # Per-sample phase increments formed in the signal's dtype, summed in float64 and
        # rounded per partial sum (what torch's CPU cumsum does for float32): a float32
        # running sum drifts by whole radians over a few seconds of audio.
        inc = (f0_up[:, None, :] * self.harmonics.to(f0_up.dtype)) / SAMPLE_RATE
        cycles = torch.cumsum(inc.double(), dim=-1).to(f0_up.dtype)
        theta = (2 * np.pi) * torch.remainder(cycles, 1)
        sines = SINE_AMP * torch.sin(theta + phase)
        uv = (f0_up > VOICED_THRESHOLD).to(f0_up.dtype)[:, None, :]
        noise_amp = uv * NOISE_STD + (1 - uv) * SINE_AMP / 3
        return sines * uv + noise_amp * noise

    def forward(self, f0_up: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        """-> excitation (B, 1, N)."""
        sines = self.sine_waves(f0_up, phase, noise)
        mixed = torch.einsum("oh,bhn->bon", self.l_linear.weight, sines)
        return torch.tanh(mixed + self.l_linear.bias[None, :, None])


class HiFTGenerator(nn.Module):
    """mel (B, 80, T) -> waveform (B, 256 T) in [-0.99, 0.99]. Use in eval mode."""

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        super().__init__()
        self.m_source = SourceModule()
        self.conv_pre = nn.Conv1d(N_MELS, BASE_CHANNELS, 7, padding=3)
        self.ups = nn.ModuleList()
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        n_ups = len(UPSAMPLE_RATES)
        # Source STFT frame rate relative to each stage's output: 8 for stage 0, 1 for the last.
        down_rates = [math.prod(UPSAMPLE_RATES[i + 1 :]) for i in range(n_ups)]
        for i, (u, k) in enumerate(zip(UPSAMPLE_RATES, UPSAMPLE_KERNELS, strict=True)):
            cin, cout = BASE_CHANNELS >> i, BASE_CHANNELS >> (i + 1)
            self.ups.append(nn.ConvTranspose1d(cin, cout, k, stride=u, padding=(k - u) // 2))
            r = down_rates[i]
            if r == 1:
                self.source_downs.append(nn.Conv1d(ISTFT_NFFT + 2, cout, 1))
            else:
                self.source_downs.append(
                    nn.Conv1d(ISTFT_NFFT + 2, cout, 2 * r, stride=r, padding=r // 2)
                )
            self.source_resblocks.append(
                ResBlock(cout, SOURCE_RESBLOCK_KERNELS[i], RESBLOCK_DILATIONS)
            )
            for rk in RESBLOCK_KERNELS:
                self.resblocks.append(ResBlock(cout, rk, RESBLOCK_DILATIONS))
        self.conv_post = nn.Conv1d(BASE_CHANNELS >> n_ups, ISTFT_NFFT + 2, 7, padding=3)
        self.f0_predictor = ConvRNNF0Predictor()
        window = scipy.signal.get_window("hann", ISTFT_NFFT, fftbins=True).astype(np.float32)
        self.register_buffer("stft_window", torch.from_numpy(window), persistent=False)
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self.trunk_dtype: torch.dtype | None = None  # None: the weights' dtype throughout
        self.eval()

    def set_trunk_dtype(self, dtype: torch.dtype | None) -> None:
        """Run the convolution trunk (conv_pre, upsampling, resblocks, source convs, conv_post)
        in ``dtype``; the phase path (f0 predictor, sine source, both STFTs, the exp/sin head)
        stays float32."""
        self.trunk_dtype = dtype
        trunk = (self.conv_pre, self.ups, self.resblocks, self.source_downs)
        for m in (*trunk, self.source_resblocks, self.conv_post):
            m.to(torch.float32 if dtype is None else dtype)

    # ---------------------------------------------------------------- random draws

    def reset_rng(self, seed: int | None = None) -> None:
        """Restart the default phase/noise draws from ``seed`` (or the construction seed)."""
        if seed is not None:
            self._seed = seed
        self._generators.clear()

    def _generator(self, device: torch.device) -> torch.Generator:
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self._seed)
            self._generators[device] = gen
        return gen

    def draw_phase(self, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Harmonic start phases U(-pi, pi), (B, 9, 1); the fundamental starts at 0."""
        u = torch.rand(batch, N_HARMONICS, 1, generator=self._generator(device), device=device)
        phase = (u * 2 - 1) * math.pi
        phase[:, 0] = 0
        return phase.to(dtype)

    def draw_noise(self, batch: int, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Standard normal excitation noise (B, 9, N), before its voiced/unvoiced scaling."""
        g = self._generator(device)
        return torch.randn(batch, N_HARMONICS, n, generator=g, device=device).to(dtype)

    # ---------------------------------------------------------------- stages

    def predict_f0(self, mel: Tensor) -> Tensor:
        """mel (B, 80, T) -> f0 in Hz per frame (B, T)."""
        return self.f0_predictor(mel)

    def source(
        self, f0: Tensor, phase: Tensor | None = None, noise: Tensor | None = None
    ) -> Tensor:
        """f0 per frame (B, T) -> excitation (B, 1, 256 T)."""
        b, t = f0.shape
        f0_up = f0.repeat_interleave(HOP, dim=-1)  # nearest-neighbour upsampling to samples
        if phase is None:
            phase = self.draw_phase(b, f0.device, f0.dtype)
        if noise is None:
            noise = self.draw_noise(b, t * HOP, f0.device, f0.dtype)
        return self.m_source(f0_up, phase.to(f0.dtype), noise.to(f0.dtype))

    def decode(self, mel: Tensor, source: Tensor) -> Tensor:
        """mel (B, 80, T), excitation (B, 1, 256 T) -> waveform (B, 256 T)."""
        window = self.stft_window.to(source.dtype)
        spec = torch.stft(
            source[:, 0], ISTFT_NFFT, ISTFT_HOP, ISTFT_NFFT, window=window, return_complex=True
        )
        s_stft = torch.cat([spec.real, spec.imag], dim=1)  # (B, 18, 64 T + 1)
        if self.trunk_dtype is not None:
            mel, s_stft = mel.to(self.trunk_dtype), s_stft.to(self.trunk_dtype)
        x = self.conv_pre(mel)
        n_ups = len(self.ups)
        n_kernels = len(RESBLOCK_KERNELS)
        for i in range(n_ups):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            if i == n_ups - 1:
                x = F.pad(x, (1, 0), mode="reflect")  # one frame more, to match the source STFT
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / n_kernels
        x = self.conv_post(F.leaky_relu(x)).to(source.dtype)  # default slope 0.01, not 0.1
        half = ISTFT_NFFT // 2 + 1
        magnitude = torch.clamp(torch.exp(x[:, :half]), max=1e2)
        phase = torch.sin(x[:, half:])  # sin() of the raw output, as the model was trained
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        wav = torch.istft(spec, ISTFT_NFFT, ISTFT_HOP, ISTFT_NFFT, window=window)
        return torch.clamp(wav, -AUDIO_LIMIT, AUDIO_LIMIT)

    @torch.no_grad()  # inference only; upstream also runs the source without grad
    def forward(
        self,
        mel: Tensor,
        f0: Tensor | None = None,
        phase: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """mel (B, 80, T) [, f0 (B, T) Hz, phase (B, 9, 1), noise (B, 9, 256 T)] -> (B, 256 T)."""
        if f0 is None:
            f0 = self.predict_f0(mel)
        return self.decode(mel, self.source(f0, phase, noise))


# --------------------------------------------------------------------------- loading


def _fold_weight_norm(state: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """Replace every (g, v) weight-norm pair by its weight w = g * v / ||v||.

    The norm runs over all dims but 0: per output channel for Conv1d, per *input* channel for
    ConvTranspose1d, whose weight is (in, out, k). Accepts the old ``weight_g``/``weight_v``
    keys and the parametrization keys (``parametrizations.weight.original0``/``original1``).
    """
    pairs = (
        ("weight_g", "weight_v"),
        ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    )
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for g_suf, v_suf in pairs:
            suf = next((s for s in (g_suf, v_suf) if key == s or key.endswith("." + s)), None)
            if suf is None:
                continue
            base = key[: -len(suf)]  # "" or "<module path>."
            g_key, v_key = base + g_suf, base + v_suf
            for need in (g_key, v_key):
                if need not in state:
                    raise CheckpointError(f"{what}: missing keys: {need}")
            if key == g_key:  # fold once per pair
                g = state[g_key].double()
                v = state[v_key].double()
                norm = v.pow(2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()
                out[base + "weight"] = (v * (g / norm)).to(state[v_key].dtype)
            break
        else:
            out[key] = value
    return out


def load_hift(
    path: str | Path, device: str | torch.device = "cpu", seed: int = DEFAULT_SEED
) -> HiFTGenerator:
    """Build HiFTGenerator and load hift.pt strictly, folding weight norm into the weights."""
    what = f"HiFT ({Path(path).name})"
    model = HiFTGenerator(seed=seed)
    state = _fold_weight_norm(find_state_dict(read_checkpoint(path)), what)
    load_into(model, state, what=what)
    return model.to(device).eval()
