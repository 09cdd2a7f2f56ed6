"""Seed-VC length regulator: content features (B, T, 1024) -> DiT condition (B, T', 384).

Written from the architecture description of the parity kit (README section 3): project to the
model width, stretch in time with legacy nearest interpolation, then a small conv stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on the valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class InterpolateRegulator(nn.Module):
    """InterpolateRegulator for continuous (XLSR) input.

    Parameter names follow the upstream checkpoint (``model.N``, ``content_in_proj``); the stored
    ``embedding`` and ``mask_token`` are unused for continuous input but kept so that a strict
    load of the published file passes.
    """

    def __init__(
        self,
        channels: int = 384,
        in_channels: int = 1024,
        num_convs: int = 4,
        codebook_size: int = 1024,
        groups: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers += [
                nn.Conv1d(channels, channels, 3, 1, 1),
                nn.GroupNorm(groups, channels),
                nn.Mish(),
            ]
        layers.append(nn.Conv1d(channels, channels, 1, 1))
        self.model = nn.Sequential(*layers)
        self.embedding = nn.Embedding(codebook_size, channels)  # discrete-token path: unused
        self.mask_token = nn.Parameter(torch.zeros(1, channels))  # unused at inference
        self.content_in_proj = nn.Linear(in_channels, channels)

    def forward(self, x: torch.Tensor, ylens: torch.Tensor | int) -> torch.Tensor:
        """x: (B, T, in_channels); ylens: target frame count(s) -> (B, max(ylens), channels)."""
        if not isinstance(ylens, torch.Tensor):
            ylens = torch.full((x.shape[0],), int(ylens), dtype=torch.long)
        ylens = ylens.to(x.device)
        t_out = int(ylens.max())
        # Project before stretching: identical result (per-frame linear) on fewer frames.
        h = self.content_in_proj(x).transpose(1, 2)
        # Legacy 'nearest' picks source frame floor(i * T_in / T_out), as upstream does.
        h = F.interpolate(h, size=t_out, mode="nearest")
        out = self.model(h).transpose(1, 2).contiguous()
        if bool((ylens < t_out).any()):  # all-full masks multiply by 1: skip them
            out = out * sequence_mask(ylens, t_out).unsqueeze(-1).to(out.dtype)
        return out
