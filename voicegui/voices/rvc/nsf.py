"""The synthesizer's decoder: a HiFi-GAN upsampler from latent frames (100/s) to samples, with
a neural-source-filter excitation for the pitch-conditioned models.

The sine source turns the f0 contour (Hz per frame) into a 0.1-amplitude sine at the model rate
plus a little noise (0.003 where voiced, 0.1/3 where unvoiced), mixed by a 1x1 linear layer and
a tanh; each upsampling stage adds that excitation, strided down to its own rate. Only the
fundamental is used (RVC's source has no overtones).

Phase: the per-sample phase is a running sum of f0/sr over the whole segment. It is kept small
by subtracting one cycle wherever a coarser, frame-rate estimate of the phase wraps, and it is
summed in float64 and rounded to float32 per partial sum (what torch's CPU cumsum does for a
float32 tensor); a float32 running sum would drift by many ulps over a few seconds and shift
the waveform visibly (the parity tests show it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.1
SINE_AMP = 0.1
VOICED_NOISE = 0.003
VOICED_THRESHOLD = 0.0  # Hz: any positive f0 is voiced


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


def nearest_up(x: Tensor, factor: int) -> Tensor:
    """(B, C, T) -> (B, C, T * factor), each frame repeated (nearest-neighbour upsampling)."""
    b, c, t = x.shape
    return x.unsqueeze(-1).expand(b, c, t, factor).reshape(b, c, t * factor)


def linear_resize(x: Tensor, n: int | Tensor) -> Tensor:
    """(B, C, L) -> (B, C, n) by linear interpolation with half-sample centres: the arithmetic
    of F.interpolate(mode="linear", align_corners=False), written with index tensors so that an
    ONNX export keeps ``n`` an input rather than a constant. torch's CPU kernel fuses the
    position and the final mix into multiply-adds (one rounding each); float64 products
    (exact for float32 operands) rounded once reproduce them."""
    length = x.shape[-1]
    scale = torch.tensor(length, dtype=torch.float32, device=x.device) / n
    centres = (torch.arange(n, dtype=torch.float32, device=x.device) + 0.5).double()
    src = torch.clamp((centres * scale.double() - 0.5).float(), min=0)
    i0 = torch.floor(src).long()
    lam = torch.clamp(src - i0.float(), 0, 1).to(x.dtype)
    i1 = torch.clamp(i0 + 1, max=length - 1)
    mixed = x[..., i0].double() * (1 - lam).double() + (x[..., i1] * lam).double()
    return mixed.to(x.dtype)


class ResBlock1(nn.Module):
    """Three (lrelu, dilated conv, lrelu, conv) residual units."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=_padding(kernel)) for _ in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE)) + x
        return x


class ResBlock2(nn.Module):
    """Two (lrelu, dilated conv) residual units (the lighter block type '2')."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d))
            for d in dilations[:2]
        )

    def forward(self, x: Tensor) -> Tensor:
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class SineSource(nn.Module):
    """f0 per frame (B, T) -> excitation (B, 1, T * upp)."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.l_linear = nn.Linear(1, 1)

    def sine(self, f0: Tensor, upp: int) -> tuple[Tensor, Tensor]:
        """-> (0.1 * sin(phase), voiced mask), both (B, T * upp, 1)."""
        rad = torch.remainder(f0[:, :, None] / self.sample_rate, 1)  # cycles per sample, per frame
        # frame-rate phase (cycles, scaled to samples), linearly interpolated to samples:
        # where its fractional part drops, a cycle ended; subtract it from the running sum
        coarse = torch.cumsum(rad.double(), dim=1).to(rad.dtype) * upp
        coarse = F.interpolate(
            coarse.transpose(1, 2), scale_factor=float(upp), mode="linear", align_corners=True
        ).transpose(1, 2)
        coarse = torch.remainder(coarse, 1)
        wraps = (coarse[:, 1:] - coarse[:, :-1]) < 0
        rad_up = nearest_up(rad.transpose(1, 2), upp).transpose(1, 2)
        shift = torch.cat([torch.zeros_like(rad_up[:, :1]), wraps.to(rad_up.dtype) * -1.0], dim=1)
        phase = torch.cumsum((rad_up + shift).double(), dim=1).to(rad_up.dtype)
        sine = torch.sin(phase * 2 * math.pi) * SINE_AMP
        uv = (f0[:, None, :] > VOICED_THRESHOLD).to(f0.dtype)
        return sine, nearest_up(uv, upp).transpose(1, 2)

    def forward(self, f0: Tensor, upp: int, noise: Tensor | None = None) -> Tensor:
        """``noise``: standard normal, (B, T * upp, 1) or any shape with that many values;
        None draws it (randn_like)."""
        sine, uv = self.sine(f0, upp)
        noise_amp = uv * VOICED_NOISE + (1 - uv) * SINE_AMP / 3
        noise = torch.randn_like(sine) if noise is None else noise.reshape(sine.shape)
        excitation = sine * uv + noise_amp * noise.to(sine.dtype)
        return torch.tanh(self.l_linear(excitation)).transpose(1, 2)


class Generator(nn.Module):
    """z (B, inter, T) [+ excitation] -> waveform (B, 1, T * upp) in (-1, 1)."""

    def __init__(
        self,
        in_channels: int,
        resblock: str,
        resblock_kernel_sizes: tuple[int, ...],
        resblock_dilation_sizes: tuple[tuple[int, ...], ...],
        upsample_rates: tuple[int, ...],
        upsample_initial_channel: int,
        upsample_kernel_sizes: tuple[int, ...],
        gin_channels: int,
        sample_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.upp = math.prod(upsample_rates)
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block = ResBlock1 if resblock == "1" else ResBlock2
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            cin, ch = upsample_initial_channel >> i, upsample_initial_channel >> (i + 1)
            self.ups.append(nn.ConvTranspose1d(cin, ch, k, stride=u, padding=(k - u) // 2))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, rk, tuple(rd)))
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=False)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1) if gin_channels else None
        self.m_source: SineSource | None = None
        self.noise_convs: nn.ModuleList | None = None
        if sample_rate is not None:  # the NSF decoder of pitch-conditioned models
            self.m_source = SineSource(sample_rate)
            self.noise_convs = nn.ModuleList()
            for i in range(len(upsample_rates)):
                c = upsample_initial_channel >> (i + 1)
                s = math.prod(upsample_rates[i + 1 :])  # source samples per stage-i sample
                if s > 1:
                    self.noise_convs.append(nn.Conv1d(1, c, 2 * s, stride=s, padding=s // 2))
                else:
                    self.noise_convs.append(nn.Conv1d(1, c, 1))

    def forward(
        self,
        z: Tensor,
        g: Tensor | None,
        f0: Tensor | None = None,
        noise: Tensor | None = None,
        n_res: int | Tensor | None = None,
    ) -> Tensor:
        """``f0`` (B, T) Hz and standard-normal ``noise`` (T * upp values) for the NSF decoder.
        ``n_res``: stretch z (and the excitation) linearly to n_res frames first (formant); a
        tensor always resizes (a same-length resize is exact), for a graph with n_res as input."""
        dynamic = isinstance(n_res, Tensor)
        source = None
        if self.m_source is not None:
            if f0 is None:
                raise ValueError("the NSF decoder needs f0")
            source = self.m_source(f0, self.upp, noise).to(self.conv_pre.weight.dtype)
            if n_res is not None and (dynamic or n_res * self.upp != source.shape[-1]):
                source = linear_resize(source, n_res * self.upp)
        if n_res is not None and (dynamic or n_res != z.shape[-1]):
            z = linear_resize(z, n_res)
        x = self.conv_pre(z)
        if self.cond is not None and g is not None:
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if source is not None:
                x = x + self.noise_convs[i](source)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / self.num_kernels
        # the final activation uses torch's default slope 0.01, not the 0.1 of the others
        x = F.leaky_relu(x, 0.01).to(self.conv_post.weight.dtype)
        return torch.tanh(self.conv_post(x))
