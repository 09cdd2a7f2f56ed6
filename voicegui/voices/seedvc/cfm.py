"""Seed-VC conditional flow matching: Euler solver around the DiT, and the DiT checkpoint loader.

Written from the architecture description of the parity kit (README section 4).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoints import CheckpointError, find_state_dict, load_into, read_checkpoint
from .dit import MEL, DiT
from .length_regulator import InterpolateRegulator

DEFAULT_SEED = 0


class CFM(nn.Module):
    """Flow-matching sampler: integrates dx/dt = v(x, t) from noise (t=0) to a mel (t=1)."""

    def __init__(self, estimator: DiT | None = None, seed: int = DEFAULT_SEED) -> None:
        super().__init__()
        self.estimator = estimator if estimator is not None else DiT()
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """The default noise source: seeded once per device, then advancing block after block."""
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device)
            gen.manual_seed(self.seed)
        return gen

    @torch.inference_mode()
    def inference(
        self,
        mu: torch.Tensor,
        x_lens: torch.Tensor | None,
        prompt: torch.Tensor,
        style: torch.Tensor,
        n_timesteps: int,
        inference_cfg_rate: float = 0.7,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        return_first_velocity: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Sample a mel (B, MEL, T) for the condition mu (B, T, 384).

        prompt (B, MEL, P) is the reference mel for the first P frames, style (B, 192). The
        returned mel has zeros on the P prompt frames (callers slice ``[..., P:]``). ``noise``
        (B, MEL, T) replaces the random start; otherwise ``generator`` (or the module's seeded
        one) draws it. With ``return_first_velocity`` also returns the estimator output of the
        first step: (B, MEL, T), or (2B, MEL, T) conditional then unconditional rows with CFG.
        """
        est = self.estimator
        weight = est.cond_x_merge_linear.weight
        device, dtype = weight.device, weight.dtype
        mu = mu.to(device, dtype)
        prompt = prompt.to(device, dtype)
        style = style.to(device, dtype)
        b, t, _ = mu.shape
        p = prompt.shape[-1]
        if noise is None:
            gen = generator if generator is not None else self.generator(device)
            noise = torch.randn((b, MEL, t), generator=gen, device=gen.device)
        # The Euler state stays float32 whatever the weights' dtype: each step adds dt * v, and
        # a 16-bit state (8 mantissa bits for bf16) would round much of that increment away.
        x = noise.to(device, torch.float32) * temperature  # fresh: updated in place below
        x[..., :p] = 0
        prompt_x = torch.zeros((b, MEL, t), device=device, dtype=dtype)
        prompt_x[..., :p] = prompt
        if x_lens is None:
            x_lens = torch.full((b,), t, dtype=torch.long, device=device)

        cfg = inference_cfg_rate > 0
        ctx = est.prepare(prompt_x, style, mu, x_lens, cfg=cfg)
        first: torch.Tensor | None = None
        for step, (t_now, dt) in enumerate(_euler_times(n_timesteps)):
            want_first = return_first_velocity and step == 0
            # Prompt-frame velocities are discarded (x is re-zeroed there), so only the
            # first-velocity report needs them.
            start = 0 if want_first else p
            v = est.velocity(ctx, x.to(dtype), t_now, first_frame=start).float()
            if want_first:
                first = v.clone()
                v = v[..., p:]
            if cfg:
                v = (1.0 + inference_cfg_rate) * v[:b] - inference_cfg_rate * v[b:]
            x[..., p:] += dt * v
        if return_first_velocity:
            assert first is not None
            return x, first
        return x


def _euler_times(n_steps: int) -> list[tuple[float, float]]:
    """(t, dt) per Euler step on linspace(0, 1, n+1), in float32 like upstream's tensors.

    Upstream advances t by accumulating dt (t = t + dt) rather than indexing the grid, which can
    differ from the grid by an ulp; reproduce that.
    """
    grid = torch.linspace(0, 1, n_steps + 1, dtype=torch.float32)
    t = grid[0]
    out = []
    for k in range(1, n_steps + 1):
        dt = grid[k] - grid[k - 1]
        out.append((float(t), float(dt)))
        t = t + dt
    return out


def build_dit_modules() -> tuple[CFM, InterpolateRegulator]:
    """Untrained modules of the seed-uvit-tat-xlsr-tiny configuration."""
    return CFM(DiT()), InterpolateRegulator()


def load_dit_checkpoint(
    path: str | Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[CFM, InterpolateRegulator]:
    """Load the DiT checkpoint (``{'net': {'cfm': ..., 'length_regulator': ...}}``).

    Strict: every learned tensor must be present with its shape (CheckpointError otherwise);
    ``input_pos`` may have any length (the published file's differs) since it is recomputed.
    Training state stored beside ``net`` is ignored.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    cfm, lr = build_dit_modules()
    for module, component in ((cfm, "cfm"), (lr, "length_regulator")):
        state = find_state_dict(obj, component)
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"{path.name} ({component}): non-tensor entries {bad[:5]}")
        load_into(
            module,
            state,
            what=f"{path.name} ({component})",
            rename=_strip_module_prefix,
            recomputable=("input_pos",),
        )
    for module in (cfm, lr):
        module.eval().requires_grad_(False)
        module.to(device=device, dtype=dtype)
    return cfm, lr


def _strip_module_prefix(key: str) -> str:
    # Checkpoints saved from a DistributedDataParallel wrapper prefix every key with "module.".
    return key.removeprefix("module.")
