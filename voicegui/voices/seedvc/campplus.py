"""CAM++ speaker encoder (feat_dim 80, 192-d embedding), inference only.

Layout (3D-Speaker / CAM++ paper): a 2-D residual front end ("FCM") over (freq, time), a strided
TDNN, three densely connected TDNN blocks whose layers use context-aware masking (CAM), transit
layers between them, statistics pooling and a BatchNorm'd linear embedding. Module names follow
the published checkpoints so their state dicts load key for key.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import find_state_dict, load_into, read_checkpoint
from .features import kaldi_fbank, mean_normalise, resample_22k_to_16k

FEAT_DIM = 80
EMBED_DIM = 192
HEAD_CHANNELS = 32
INIT_CHANNELS = 128
GROWTH = 32
BN_CHANNELS = 4 * GROWTH  # bottleneck width inside every dense layer
SEG_LEN = 100  # frames per CAM segment average
# (layers, dilation) of the three dense blocks; every CAM kernel is 3 wide.
BLOCKS = ((12, 1), (24, 2), (16, 2))


# --------------------------------------------------------------------------- 2-D front end


class _ResBlock2d(nn.Module):
    """Basic residual block; a stride only ever halves the frequency axis."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """(B, F, T) -> (B, 32 * F/8, T): frequency is downsampled 8x, time kept."""

    def __init__(self, feat_dim: int = FEAT_DIM, channels: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(
            _ResBlock2d(channels, channels, 2), _ResBlock2d(channels, channels, 1)
        )
        self.layer2 = nn.Sequential(
            _ResBlock2d(channels, channels, 2), _ResBlock2d(channels, channels, 1)
        )
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x[:, None])))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        b, c, f, t = out.shape
        return out.reshape(b, c * f, t)  # channel-major stacking of the frequency rows


# --------------------------------------------------------------------------- 1-D trunk


class _BNReLU(nn.Module):
    """BatchNorm1d then ReLU; the child name 'batchnorm' matches the checkpoints."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.batchnorm(x))


class TDNNLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.linear = nn.Conv1d(
            in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False
        )
        self.nonlinear = _BNReLU(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Local conv gated by a context mask from the global mean plus 100-frame segment means."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            in_ch, out_ch, kernel, padding=pad, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(in_ch, in_ch // 2, 1)
        self.linear2 = nn.Conv1d(in_ch // 2, out_ch, 1)

    @staticmethod
    def _segment_mean(x: Tensor) -> Tensor:
        # Mean of each 100-frame segment (the last one may be partial) repeated over its frames.
        t = x.shape[-1]
        seg = F.avg_pool1d(x, SEG_LEN, SEG_LEN, ceil_mode=True)
        return seg.repeat_interleave(SEG_LEN, dim=-1)[..., :t]

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self._segment_mean(x)
        mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return y * mask


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, bn_ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _BNReLU(in_ch)
        self.linear1 = nn.Conv1d(in_ch, bn_ch, 1, bias=False)
        self.nonlinear2 = _BNReLU(bn_ch)
        self.cam_layer = CAMLayer(bn_ch, out_ch, kernel, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.Module):
    """Dense block: every layer sees the concatenation of the input and all earlier outputs."""

    def __init__(self, layers: int, in_ch: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            layer = CAMDenseTDNNLayer(in_ch + i * GROWTH, GROWTH, BN_CHANNELS, 3, dilation)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.nonlinear = _BNReLU(in_ch)
        self.linear = nn.Conv1d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.nonlinear(x))


class _BN(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels, affine=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.batchnorm(x)


class DenseLayer(nn.Module):
    """1x1 conv on the pooled vector followed by a scale-free BatchNorm."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_ch, out_ch, 1, bias=False)
        self.nonlinear = _BN(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x[..., None])[..., 0])


def stats_pool(x: Tensor) -> Tensor:
    """(B, C, T) -> (B, 2C): time mean and unbiased standard deviation."""
    return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class CAMPPlus(nn.Module):
    """(B, T, 80) mean-normalised fbank -> (B, 192) speaker embedding. Use in eval mode."""

    def __init__(self, feat_dim: int = FEAT_DIM, embedding_size: int = EMBED_DIM) -> None:
        super().__init__()
        self.head = FCM(feat_dim)
        self.xvector = nn.Sequential()
        self.xvector.add_module("tdnn", TDNNLayer(self.head.out_channels, INIT_CHANNELS, 5, 2))
        ch = INIT_CHANNELS
        for i, (layers, dilation) in enumerate(BLOCKS, start=1):
            self.xvector.add_module(f"block{i}", CAMDenseTDNNBlock(layers, ch, dilation))
            ch += layers * GROWTH
            self.xvector.add_module(f"transit{i}", TransitLayer(ch, ch // 2))
            ch //= 2
        self.xvector.add_module("out_nonlinear", _BNReLU(ch))
        # Kept outside `xvector` (newer layout); load_campplus maps the legacy name.
        self.dense = DenseLayer(2 * ch, embedding_size)
        self.eval()

    @torch.no_grad()  # inference only
    def forward(self, feats: Tensor) -> Tensor:
        return self.dense(stats_pool(self.xvector(self.head(feats.transpose(1, 2)))))

    @torch.no_grad()
    def forward_debug(self, feats: Tensor) -> dict[str, Tensor]:
        """Intermediates for parity checks: head_out (B,320,T), xvector_out (B,512,T/2),
        stats (B,1024) and the embedding."""
        head = self.head(feats.transpose(1, 2))
        xvec = self.xvector(head)
        stats = stats_pool(xvec)
        return {
            "head_out": head,
            "xvector_out": xvec,
            "stats": stats,
            "embedding": self.dense(stats),
        }


def _rename_legacy(key: str) -> str:
    return "dense." + key[len("xvector.dense.") :] if key.startswith("xvector.dense.") else key


def load_campplus(path: str | Path, device: str | torch.device = "cpu") -> CAMPPlus:
    """Build CAMPPlus and load a checkpoint (e.g. campplus_cn_common.bin) strictly."""
    model = CAMPPlus()
    state = find_state_dict(read_checkpoint(path))
    load_into(model, state, what=f"CAMPPlus ({Path(path).name})", rename=_rename_legacy)
    return model.to(device).eval()


@torch.inference_mode()
def style_vector(wav_22k: Tensor, model: CAMPPlus) -> Tensor:
    """Speaker style of a 22.05 kHz reference: resample, fbank, mean-norm, CAMPPlus -> (1, 192)."""
    wav16 = resample_22k_to_16k(wav_22k.reshape(-1))
    feats = mean_normalise(kaldi_fbank(wav16))
    return model(feats[None])
