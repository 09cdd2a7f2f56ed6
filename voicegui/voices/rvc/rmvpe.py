"""RMVPE pitch estimator (deep U-Net on a log-mel, BiGRU, 360 pitch bins), as RVC runs it.

Three steps, each a public function so the engine (and the parity tests) can run them apart:

1. :func:`log_mel`: 128-band HTK-scale log-mel of the 16 kHz signal (hop 160, window 1024,
   centred with reflection), F = N // 160 + 1 frames;
2. :meth:`RmvpeModel.salience`: the network; the mel is padded *with zeros in the log domain* to
   a multiple of 32 frames (the U-Net halves the time axis 5 times), the output cut back to F;
   per frame and bin a sigmoid salience over 360 bins of 20 cents from 31.7 Hz;
3. :func:`decode`: in float64 numpy, the salience-weighted mean of the bins' cents over the 9
   bins around the argmax (zero padded by 4 at both ends), 0 Hz where the peak salience is at
   or below the threshold (0.03).

The released ``rmvpe.pt`` stores its weights in float16; they are widened to float32 on load and
the network runs in float32.
"""

from __future__ import annotations

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

WHAT = "RMVPE pitch model"
SAMPLE_RATE = 16000
HOP = 160
N_FFT = 1024
N_MELS = 128
FMIN, FMAX = 30.0, 8000.0
CLAMP = 1e-5
BINS = 360
CENTS_PER_BIN = 20
FIRST_BIN_CENTS = 1997.3794084376191  # cents above 10 Hz of bin 0 (31.7 Hz)
THRESHOLD = 0.03
TIME_MULTIPLE = 32  # 2**5 poolings of the time axis
LOCAL = 4  # bins on each side of the argmax in the weighted mean


# ------------------------------------------------------------------------------------ mel


@lru_cache(maxsize=4)
def _mel_tables(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # librosa's float32 filter values; the window computed in float32 like upstream's
    basis = torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, FMIN, FMAX, htk=True))
    return basis.to(device, dtype), torch.hann_window(N_FFT).to(device, dtype)


def mel_frames(samples: int) -> int:
    return samples // HOP + 1


def log_mel(wav: Tensor) -> Tensor:
    """16 kHz (N,) or (B, N) -> natural-log mel (B, 128, N // 160 + 1), in float32 (float64
    input stays float64: the tests use it as the exact reference)."""
    if wav.dim() == 1:
        wav = wav[None]
    wav = wav if wav.dtype == torch.float64 else wav.float()
    if wav.shape[-1] <= N_FFT // 2:
        raise ValueError(f"RMVPE needs more than {N_FFT // 2} samples, got {wav.shape[-1]}")
    basis, window = _mel_tables(wav.device, wav.dtype)
    spec = torch.stft(
        wav, N_FFT, hop_length=HOP, win_length=N_FFT, window=window, center=True,
        pad_mode="reflect", return_complex=True,
    )  # fmt: skip
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))  # no epsilon
    return torch.log(torch.clamp(torch.matmul(basis, magnitude), min=CLAMP))


# ------------------------------------------------------------------------------------ network


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=0.01)


class _ResBlock(nn.Module):
    """conv3x3-BN-ReLU twice, plus the input (through a 1x1 conv where the width changes)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False), _bn(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _bn(cout), nn.ReLU(),
        )  # fmt: skip
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + (x if self.shortcut is None else self.shortcut(x))


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, pool: tuple[int, int] | None):
        super().__init__()
        self.conv = nn.ModuleList(_ResBlock(cin if i == 0 else cout, cout) for i in range(blocks))
        self.pool = nn.AvgPool2d(pool) if pool is not None else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.conv:
            x = block(x)
        return x


class _Encoder(nn.Module):
    def __init__(self, stages: int, blocks: int, width: int, pool: tuple[int, int]):
        super().__init__()
        self.bn = _bn(1)
        chans = [1] + [width * 2**i for i in range(stages)]
        self.layers = nn.ModuleList(
            _Stage(chans[i], chans[i + 1], blocks, pool) for i in range(stages)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = self.bn(x)
        skips = []
        for stage in self.layers:
            x = stage(x)
            skips.append(x)
            x = stage.pool(x)
        return x, skips


class _Intermediate(nn.Module):
    def __init__(self, cin: int, cout: int, stages: int, blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            _Stage(cin if i == 0 else cout, cout, blocks, None) for i in range(stages)
        )

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.layers:
            x = stage(x)
        return x


class _UpStage(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, stride: tuple[int, int]):
        super().__init__()
        out_pad = (0, 1) if stride == (1, 2) else (1, 1)
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 3, stride, 1, out_pad, bias=False), _bn(cout), nn.ReLU()
        )
        self.conv2 = nn.ModuleList(
            _ResBlock(cout * 2 if i == 0 else cout, cout) for i in range(blocks)
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class _Decoder(nn.Module):
    def __init__(self, cin: int, stages: int, blocks: int, stride: tuple[int, int]):
        super().__init__()
        self.layers = nn.ModuleList(
            _UpStage(cin // 2**i, cin // 2 ** (i + 1), blocks, stride) for i in range(stages)
        )

    def forward(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        for stage, skip in zip(self.layers, reversed(skips), strict=True):
            x = stage(x, skip)
        return x


class _UNet(nn.Module):
    def __init__(self, stages: int, inter: int, blocks: int, width: int, pool: tuple[int, int]):
        super().__init__()
        self.encoder = _Encoder(stages, blocks, width, pool)
        deepest = width * 2 ** (stages - 1)
        self.intermediate = _Intermediate(deepest, deepest * 2, inter, blocks)
        self.decoder = _Decoder(deepest * 2, stages, blocks, pool)

    def forward(self, x: Tensor) -> Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class _BiGRU(nn.Module):
    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.gru(x)[0]


class RmvpeModel(nn.Module):
    """The released RMVPE: U-Net (5 stages of 4 residual blocks from 16 channels, 4 middle
    stages, 2x2 pooling), a 3-channel conv, BiGRU(384 -> 2x256), Linear(512 -> 360)."""

    def __init__(self, blocks: int = 4, stages: int = 5, inter: int = 4, width: int = 16):
        super().__init__()
        self.unet = _UNet(stages, inter, blocks, width, (2, 2))
        self.cnn = nn.Conv2d(width, 3, 3, padding=1)
        self.fc = nn.Sequential(_BiGRU(3 * N_MELS, 256), nn.Linear(512, BINS))
        self.eval()

    def logits(self, mel: Tensor) -> Tensor:
        """(B, 128, F) log-mel -> (B, F, 360) pre-sigmoid salience."""
        frames = mel.shape[-1]
        pad = -frames % TIME_MULTIPLE
        mel = F.pad(mel, (0, pad))  # zeros in the log domain, as upstream pads
        x = mel.transpose(-1, -2).unsqueeze(1)  # (B, 1, T, 128)
        x = self.cnn(self.unet(x)).transpose(1, 2).flatten(-2)  # (B, T, 3 * 128)
        return self.fc(x)[:, :frames]

    @torch.inference_mode()
    def salience(self, mel: Tensor) -> Tensor:
        """(B, 128, F) log-mel -> (B, F, 360) salience in [0, 1]."""
        return torch.sigmoid(self.logits(mel))


# ------------------------------------------------------------------------------------ decode

_CENTS = np.pad(CENTS_PER_BIN * np.arange(BINS) + FIRST_BIN_CENTS, (LOCAL, LOCAL))


def decode(salience: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """(F, 360) float32 salience -> (F,) f0 in Hz, float64; 0 where unvoiced."""
    sal = np.pad(np.asarray(salience), ((0, 0), (LOCAL, LOCAL)))
    centre = np.argmax(salience, axis=1) + LOCAL
    window = centre[:, None] + np.arange(-LOCAL, LOCAL + 1)[None, :]
    weights = np.take_along_axis(sal, window, axis=1)  # float32, like the salience
    cents = np.sum(weights * _CENTS[window], axis=1) / np.sum(weights, axis=1)
    cents[np.max(sal, axis=1) <= threshold] = 0
    f0 = 10 * 2 ** (cents / 1200)
    f0[f0 == 10] = 0
    return f0


class Rmvpe:
    """f0 of 16 kHz audio with the RMVPE network: ``f0(wav)`` -> (N // 160 + 1,) Hz, float64."""

    def __init__(self, model: RmvpeModel, threshold: float = THRESHOLD) -> None:
        self.model = model
        self.threshold = threshold

    @property
    def device(self) -> torch.device:
        return self.model.cnn.weight.device

    def f0(self, wav16k: Tensor | np.ndarray) -> np.ndarray:
        wav = torch.as_tensor(np.asarray(wav16k) if not torch.is_tensor(wav16k) else wav16k)
        mel = log_mel(wav.reshape(-1).to(self.device))
        salience = self.model.salience(mel)[0].float().cpu().numpy()
        return decode(salience, self.threshold)


def load_rmvpe(path: str | Path, device: str | torch.device = "cpu") -> Rmvpe:
    """Load ``rmvpe.pt`` (a state dict, float16 as released or float32)."""
    state = read_weights_file(path, WHAT)
    if isinstance(state.get("model"), Mapping):  # some repacks nest the weights
        state = dict(state["model"])
    if not any(k.startswith("unet.") for k in state):
        keys = ", ".join(list(map(str, state))[:8])
        raise CheckpointError(f"{WHAT}: {Path(path).name} is not an RMVPE checkpoint ({keys})")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{WHAT}: {Path(path).name} has entries that are not tensors")
    model = RmvpeModel()
    load_into(model, state, what=WHAT)  # strict; float16 values widened to the float32 model
    return Rmvpe(model.to(device).eval())
