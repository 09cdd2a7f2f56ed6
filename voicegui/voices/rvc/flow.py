"""The synthesizer's normalising flow, run in reverse at inference: prior sample z_p -> z.

Four mean-only affine coupling layers, each followed by a channel flip; reversing runs the list
backwards, so every coupling is preceded by its flip. A coupling keeps the first half of the
channels and subtracts from the second half a shift that a small WaveNet (gated dilated convs
conditioned on the speaker embedding) predicts from the first half.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WaveNet(nn.Module):
    """Gated conv stack: h -> sum of skip outputs (B, hidden, T), conditioned on g (B, gin, 1)."""

    def __init__(
        self, hidden: int, kernel: int, dilation_rate: int, n_layers: int, gin: int
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        self.cond_layer = nn.Conv1d(gin, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            d = dilation_rate**i
            self.in_layers.append(
                nn.Conv1d(hidden, 2 * hidden, kernel, dilation=d, padding=(kernel * d - d) // 2)
            )
            out = 2 * hidden if i < n_layers - 1 else hidden  # the last layer only skips
            self.res_skip_layers.append(nn.Conv1d(hidden, out, 1))

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        h = self.hidden
        gc = self.cond_layer(g)
        out = torch.zeros_like(x)
        for i, (conv_in, res_skip) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            a = conv_in(x) + gc[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                x = x + rs[:, :h]
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out


class MeanOnlyCoupling(nn.Module):
    def __init__(self, channels: int, hidden: int, kernel: int, n_layers: int, gin: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WaveNet(hidden, kernel, 1, n_layers, gin)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x: Tensor, g: Tensor) -> Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        shift = self.post(self.enc(self.pre(x0), g))
        return torch.cat([x0, x1 - shift], dim=1)


class ChannelFlip(nn.Module):
    """Reverses the channel order (no parameters; keeps the checkpoint's module indices)."""

    def reverse(self, x: Tensor, g: Tensor) -> Tensor:
        return torch.flip(x, [1])


class ReverseFlow(nn.Module):
    def __init__(
        self,
        channels: int,
        hidden: int,
        kernel: int = 5,
        n_layers: int = 3,
        n_flows: int = 4,
        gin: int = 0,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(MeanOnlyCoupling(channels, hidden, kernel, n_layers, gin))
            self.flows.append(ChannelFlip())

    def forward(self, z_p: Tensor, g: Tensor) -> Tensor:
        x = z_p
        for flow in reversed(self.flows):
            x = flow.reverse(x, g)
        return x
