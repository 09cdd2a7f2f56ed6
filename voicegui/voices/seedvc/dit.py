"""Seed-VC DiT velocity estimator: a U-ViT transformer with time and style as tokens.

Written from the architecture description of the parity kit (README section 5). Parameter names
follow the upstream checkpoint (``transformer.layers.N.attention.wqkv`` ...), including tensors
that are stored but unused at inference, so that a strict load of the published file passes.

Speed: the Euler solver calls the estimator many times with the same prompt, style and
condition, so the work is split into ``prepare`` (once per solve: every term of the input merge
that does not depend on the noisy mel, the style tokens, RoPE table and mask) and ``velocity``
(once per step). ``forward`` is the plain one-call interface built on the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 384
HEADS = 6
HEAD_DIM = HIDDEN // HEADS
DEPTH = 9
FFN_HIDDEN = 1024
MEL = 80
STYLE = 192
CONTENT_CODEBOOK = 1024
TIME_FREQ_DIM = 256
TIME_SCALE = 1000.0
ROPE_BASE = 10000.0
NORM_EPS = 1e-5
N_LEADING = 2  # time token, style token
INPUT_POS_LEN = 16384  # length of the stored (recomputable) input_pos buffer


def timestep_freqs(half: int, device: torch.device | None = None) -> torch.Tensor:
    """The upstream timestep frequencies, always float32 (a half-cast table would ruin 1000*t)."""
    idx = torch.arange(half, dtype=torch.float32, device=device)
    return torch.exp(-math.log(10000.0) * idx / half)


def rope_table(length: int, device: torch.device | None = None) -> torch.Tensor:
    """Complex rotations (length, HEAD_DIM/2) for positions 0..length-1, computed in float32."""
    inv = 1.0 / (
        ROPE_BASE ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32, device=device) / HEAD_DIM)
    )
    angles = torch.outer(torch.arange(length, dtype=torch.float32, device=device), inv)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of x (B, L, *mid, D) by table (L, D/2), in float32."""
    mid = x.dim() - 3
    rot = table.view(table.shape[0], *([1] * mid), table.shape[1])
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * rot).flatten(-2).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class AdaptiveLayerNorm(nn.Module):
    """RMSNorm, optionally scaled and shifted by a projection of a condition.

    Inside the blocks no condition is given (time is a token), so ``project_layer`` is stored
    but unused there; only the final norm is conditioned on the time embedding.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project_layer = nn.Linear(dim, 2 * dim)
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            return self.norm(x)
        weight, bias = self.project_layer(cond).chunk(2, dim=-1)
        return weight * self.norm(x) + bias


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wqkv = nn.Linear(HIDDEN, 3 * HIDDEN, bias=False)
        self.wo = nn.Linear(HIDDEN, HIDDEN, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor | None,
        first_query: int = 0,
    ) -> torch.Tensor:
        """x (B, L, HIDDEN) -> (B, L - first_query, HIDDEN); earlier rows serve as keys only."""
        b, n, _ = x.shape
        w = getattr(self.wqkv, "weight", None)
        if first_query == 0 or not isinstance(w, torch.Tensor):  # (int8 layers: no .weight)
            qkv = self.wqkv(x).view(b, n, 3, HEADS, HEAD_DIM)
            q, k = apply_rope(qkv[:, :, :2], rope).unbind(2)
            v = qkv[:, :, 2]
            q = q[:, first_query:]
        else:
            # Only the kept rows need queries: project q for them, k and v for all rows.
            q = F.linear(x[:, first_query:], w[:HIDDEN]).view(b, n - first_query, HEADS, HEAD_DIM)
            q = apply_rope(q, rope[first_query:])
            kv = F.linear(x, w[HIDDEN:]).view(b, n, 2, HEADS, HEAD_DIM)
            k = apply_rope(kv[:, :, 0], rope)
            v = kv[:, :, 1]
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
        )
        return self.wo(out.transpose(1, 2).reshape(b, -1, HIDDEN))


class FeedForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Linear(HIDDEN, FFN_HIDDEN, bias=False)
        self.w3 = nn.Linear(HIDDEN, FFN_HIDDEN, bias=False)
        self.w2 = nn.Linear(FFN_HIDDEN, HIDDEN, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.w1(x)
        if torch.is_grad_enabled():
            return self.w2(F.silu(gate) * self.w3(x))
        # Inference: reuse the (B, L, 1024) buffer instead of two fresh ones; these passes are
        # memory-bound and measurably cheaper in place. Same values.
        return self.w2(F.silu(gate, inplace=True).mul_(self.w3(x)))


class TransformerBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention()
        self.feed_forward = FeedForward()
        self.ffn_norm = AdaptiveLayerNorm(HIDDEN)
        self.attention_norm = AdaptiveLayerNorm(HIDDEN)
        self.skip_in_linear = nn.Linear(2 * HIDDEN, HIDDEN)  # used by the popping blocks only

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor | None,
        skip: torch.Tensor | None = None,
        first_query: int = 0,
    ) -> torch.Tensor:
        if skip is not None:
            x = self.skip_in_linear(torch.cat([x, skip], dim=-1))
        attn = self.attention(self.attention_norm(x), rope, mask, first_query)
        if torch.is_grad_enabled():
            h = x[:, first_query:] + attn
            return h + self.feed_forward(self.ffn_norm(h))
        h = attn.add_(x[:, first_query:])  # the fresh sub-layer outputs take the residual sums
        return self.feed_forward(self.ffn_norm(h)).add_(h)


class Transformer(nn.Module):
    """9 blocks with LIFO U-ViT skips (5<-3, 6<-2, 7<-1, 8<-0) and a time-conditioned final norm."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerBlock() for _ in range(DEPTH))
        self.norm = AdaptiveLayerNorm(HIDDEN)

    def forward(
        self,
        x: torch.Tensor,
        time_emb: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor | None,
        first_query: int = 0,
    ) -> torch.Tensor:
        """Returns the normalised rows first_query.. of the last block (earlier rows are only
        needed as keys and values, so the last block skips their queries and FFN)."""
        half = DEPTH // 2
        skips: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            skip = skips.pop() if i > half else None
            x = layer(x, rope, mask, skip, first_query if i == DEPTH - 1 else 0)
            if i < half:
                skips.append(x)
        return self.norm(x, time_emb[:, None])


class TimestepEmbedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(TIME_FREQ_DIM, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN)
        )
        # Stored in the checkpoint; forward recomputes the same constant in float32 instead, so a
        # half-precision copy of the module keeps exact frequencies.
        self.register_buffer("freqs", timestep_freqs(TIME_FREQ_DIM // 2))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t (B,) in [0, 1] -> (B, HIDDEN) in the weights' dtype."""
        freqs = timestep_freqs(TIME_FREQ_DIM // 2, t.device)
        args = TIME_SCALE * t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class WeightNormLinear(nn.Module):
    """Parameter holder for the stored, unused ``x_embedder`` (a weight-normed projection)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(out_features, 1))
        self.weight_v = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))


@dataclass
class SolveContext:
    """Per-solve constants of the estimator input (see DiT.prepare)."""

    w_x: torch.Tensor  # (HIDDEN, MEL): the noisy-mel columns of cond_x_merge_linear
    frame_const: torch.Tensor  # (G, B, T, HIDDEN): prompt_x and cond terms plus bias
    style_tokens: torch.Tensor  # (G*B, 1, HIDDEN)
    rope: torch.Tensor  # (T+2, HEAD_DIM/2) complex
    mask: torch.Tensor | None  # (G*B, 1, 1, T+2) key mask, None when every frame is valid
    groups: int  # 1, or 2 with classifier-free guidance (row group 1 = unconditional)


class DiT(nn.Module):
    """Velocity estimator v(x, prompt_x, t, style, cond) for the seed-uvit-tat-xlsr-tiny model."""

    def __init__(self) -> None:
        super().__init__()
        self.transformer = Transformer()
        # Stored but unused at inference (discrete-token / long-skip variants of the model).
        self.x_embedder = WeightNormLinear(MEL, HIDDEN)
        self.cond_embedder = nn.Embedding(CONTENT_CODEBOOK, HIDDEN)
        self.content_mask_embedder = nn.Embedding(1, HIDDEN)
        self.skip_linear = nn.Linear(HIDDEN + MEL, HIDDEN)
        # Used.
        self.cond_projection = nn.Linear(HIDDEN, HIDDEN)
        self.t_embedder = TimestepEmbedder()
        self.final_mlp = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, MEL))
        self.cond_x_merge_linear = nn.Linear(2 * MEL + HIDDEN, HIDDEN)
        self.style_in = nn.Linear(STYLE, HIDDEN)
        # Positions are recomputed (arange) where needed; the buffer only mirrors the file.
        self.register_buffer("input_pos", torch.arange(INPUT_POS_LEN))
        self._rope_cache: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _rope(self, length: int, device: torch.device) -> torch.Tensor:
        key = (length, device)
        table = self._rope_cache.get(key)
        if table is None:
            if len(self._rope_cache) >= 16:
                self._rope_cache.clear()
            table = self._rope_cache[key] = rope_table(length, device)
        return table

    def prepare(
        self,
        prompt_x: torch.Tensor,
        style: torch.Tensor,
        cond: torch.Tensor,
        x_lens: torch.Tensor | None = None,
        cfg: bool = False,
    ) -> SolveContext:
        """Everything that is constant across Euler steps.

        prompt_x (B, MEL, T), style (B, STYLE), cond (B, T, HIDDEN), x_lens (B,). With ``cfg`` a
        second, unconditional row group is added in which prompt_x, style and cond are zero; its
        constant terms are then single vectors (the biases) broadcast over the frames.
        """
        b, _, t = prompt_x.shape
        w = self.cond_x_merge_linear.weight
        w_x = w[:, :MEL].contiguous()
        w_p, w_c = w[:, MEL : 2 * MEL], w[:, 2 * MEL :]
        bias = self.cond_x_merge_linear.bias
        const = F.linear(prompt_x.transpose(1, 2), w_p) + F.linear(
            self.cond_projection(cond), w_c, bias
        )
        style_tok = self.style_in(style)[:, None]
        consts, styles = [const], [style_tok]
        if cfg:
            # cond = 0 -> cond_projection gives its bias; prompt_x = 0 adds nothing; style = 0
            # -> style_in gives its bias.
            consts.append(F.linear(self.cond_projection.bias, w_c, bias).expand_as(const))
            styles.append(self.style_in.bias.expand_as(style_tok))
        groups = len(consts)
        n = t + N_LEADING
        mask = None
        if x_lens is not None:
            x_lens = x_lens.to(prompt_x.device)
            if bool((x_lens < t).any()):
                pos = torch.arange(n, device=prompt_x.device)
                valid = pos[None] < (x_lens[:, None] + N_LEADING)
                mask = valid.repeat(groups, 1)[:, None, None, :]
        return SolveContext(
            w_x=w_x,
            frame_const=torch.stack(consts),
            style_tokens=torch.cat(styles),
            rope=self._rope(n, prompt_x.device),
            mask=mask,
            groups=groups,
        )

    def velocity(
        self, ctx: SolveContext, x: torch.Tensor, t: torch.Tensor | float, first_frame: int = 0
    ) -> torch.Tensor:
        """x (B, MEL, T), t (B,) or a float -> velocities (G*B, MEL, T - first_frame).

        Frames before ``first_frame`` still take part as keys and values; only their outputs are
        skipped (the solver zeroes the prompt frames anyway).
        """
        b = x.shape[0]
        g = ctx.groups
        frames = (F.linear(x.transpose(1, 2), ctx.w_x).unsqueeze(0) + ctx.frame_const).flatten(0, 1)
        if not isinstance(t, torch.Tensor):
            t = torch.full((b,), float(t), dtype=torch.float32, device=x.device)
        t1 = self.t_embedder(t.to(x.device).reshape(-1).expand(b)).repeat(g, 1)
        tokens = torch.cat([t1[:, None], ctx.style_tokens, frames], dim=1)
        h = self.transformer(tokens, t1, ctx.rope, ctx.mask, N_LEADING + first_frame)
        return self.final_mlp(h).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        prompt_x: torch.Tensor,
        x_lens: torch.Tensor | None,
        t: torch.Tensor,
        style: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """One estimator call: (B, MEL, T) velocities, upstream argument order."""
        return self.velocity(self.prepare(prompt_x, style, cond, x_lens), x, t)
