"""The synthesizer's prior encoder (``enc_p``): content features (+ coarse pitch) -> the mean
and log-scale of the latent prior, one frame per 10 ms.

A linear projection of the features plus a pitch embedding, scaled by sqrt(hidden) and passed
through a leaky ReLU, then a post-norm transformer with windowed relative-position attention
(VITS's encoder): every head shares one table of 2*window+1 relative key and value vectors, and
positions farther apart than the window get no relative term. Inference runs one utterance at a
time with every frame valid, so no padding mask is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RELATIVE_WINDOW = 10  # relative positions -10..10 have their own key/value vectors
LRELU_SLOPE = 0.1
LN_EPS = 1e-5
PITCH_BINS = 256  # coarse pitch 1..255, 0 unused


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T) tensor; parameters named gamma/beta."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.transpose(1, 2), (self.channels,), self.gamma, self.beta, LN_EPS)
        return y.transpose(1, 2)


def _band(n: int, window: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """For each query i and offset r in 0..2w, the key j = i + r - w (clamped into range) and
    whether it exists."""
    i = torch.arange(n, device=device)[:, None]
    r = torch.arange(2 * window + 1, device=device)[None, :]
    j = i + r - window
    valid = (j >= 0) & (j < n)
    return j.clamp(0, n - 1), valid


class RelativeAttention(nn.Module):
    """Multi-head self-attention with shared windowed relative-position keys and values."""

    def __init__(self, channels: int, n_heads: int, window: int = RELATIVE_WINDOW) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window = window
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        n_rel = 2 * window + 1
        self.emb_rel_k = nn.Parameter(torch.zeros(1, n_rel, self.head_dim))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, n_rel, self.head_dim))

    def _heads(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, H, T, D)
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.head_dim, t).transpose(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        q = self._heads(self.conv_q(x)) / math.sqrt(self.head_dim)
        k = self._heads(self.conv_k(x))
        v = self._heads(self.conv_v(x))
        keys, valid = _band(t, self.window, x.device)
        scores = q @ k.transpose(-2, -1)  # (B, H, T, T)
        # relative logits q_i . E_k[j - i] for |j - i| <= window, added on the band
        rel = (q @ self.emb_rel_k[0].transpose(0, 1)) * valid  # (B, H, T, 2w+1)
        scores = scores.scatter_add(-1, keys.expand(b, self.n_heads, t, -1), rel)
        p = torch.softmax(scores, dim=-1)
        out = p @ v
        # relative values: sum_j p_ij E_v[j - i] over the band
        p_band = torch.gather(p, -1, keys.expand(b, self.n_heads, t, -1)) * valid
        out = out + p_band @ self.emb_rel_v[0]
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class FeedForward(nn.Module):
    """Conv (kernel k, 'same' padding) -> ReLU -> conv."""

    def __init__(self, channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.pad = ((kernel - 1) // 2, kernel // 2)
        self.conv_1 = nn.Conv1d(channels, hidden, kernel)
        self.conv_2 = nn.Conv1d(hidden, channels, kernel)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv_1(F.pad(x, self.pad)))
        return self.conv_2(F.pad(x, self.pad))


class RelativeTransformer(nn.Module):
    """Post-norm layers: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(
        self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel: int
    ):
        super().__init__()
        self.attn_layers = nn.ModuleList(
            RelativeAttention(channels, n_heads) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FeedForward(channels, filter_channels, kernel) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: Tensor) -> Tensor:
        for attn, ln1, ffn, ln2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = ln1(x + attn(x))
            x = ln2(x + ffn(x))
        return x


class TextEncoder(nn.Module):
    """phone (B, T, feature_dim) [+ coarse pitch (B, T)] -> m_p, logs_p (B, out, T - head)."""

    def __init__(
        self,
        feature_dim: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        f0: bool,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.emb_phone = nn.Linear(feature_dim, hidden_channels)
        self.emb_pitch = nn.Embedding(PITCH_BINS, hidden_channels) if f0 else None
        self.encoder = RelativeTransformer(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size
        )
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, phone: Tensor, pitch: Tensor | None = None, head: int | Tensor = 0
    ) -> tuple[Tensor, Tensor]:
        """``head``: frames to drop from the front after the transformer (it still sees them)."""
        x = self.emb_phone(phone)
        if self.emb_pitch is not None:
            if pitch is None:
                raise ValueError("this voice model is pitch-conditioned: pass the coarse pitch")
            x = x + self.emb_pitch(pitch)
        # the scale comes before the activation, as trained (same value: leaky ReLU is
        # positively homogeneous, but the rounding follows the original order)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), LRELU_SLOPE)
        x = self.encoder(x.transpose(1, 2))[:, :, head:]
        stats = self.proj(x)
        return stats[:, : self.out_channels], stats[:, self.out_channels :]
