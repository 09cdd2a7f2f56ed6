"""Seed-VC blocks of several streams in one pass: content encoder, length regulator, the DiT's
Euler solve and the vocoder each run once over the rows of streams whose blocks have the same
shape.

Streams differ in their reference prompt (its length too): each row is laid out as its own
prompt then its block, padded at the end, and the DiT's key mask hides the padding, so every
row attends exactly to what it would attend to alone. Noise is drawn per row from each
stream's own generators, in the order and shapes the unbatched block draws them, so a row
differs from the same block computed alone only by the rounding of batched matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from voicegui.voices.seedvc.cfm import _euler_times
from voicegui.voices.seedvc.dit import MEL
from voicegui.voices.seedvc.features import resample_22k_to_16k
from voicegui.voices.seedvc.model import BlockPlan, Prompt, SeedVCModel


@dataclass
class Row:
    """One stream's block: its window (22.05 kHz) and everything the block depends on."""

    window: torch.Tensor
    prompt: Prompt
    plan: BlockPlan
    steps: int
    cfg: float
    vocoder_frames: int | None
    generators: StreamGenerators


class StreamGenerators:
    """A stream's noise sources (the DiT's start noise, the vocoder's phases and noise), seeded
    once per stream like the local voice's after ``reset``."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.cfm = {device: torch.Generator(device=device).manual_seed(seed)}
        self.vocoder = {device: torch.Generator(device=device).manual_seed(seed)}

    def install(self, model: SeedVCModel) -> None:
        """Make the model draw from this stream's generators (the model is shared by streams;
        one block runs at a time)."""
        model.cfm._generators = self.cfm
        model.vocoder._generators = self.vocoder


def batch_key(row: Row) -> tuple:
    """Rows with equal keys can share one pass."""
    return (row.window.shape[-1], row.plan, row.steps, row.cfg, row.vocoder_frames)


def infer_one(model: SeedVCModel, row: Row) -> torch.Tensor:
    """A block alone: exactly the local voice's computation."""
    row.generators.install(model)
    return model.infer_block(
        row.window, row.prompt, row.plan, row.steps, row.cfg, vocoder_frames=row.vocoder_frames
    )


@torch.inference_mode()
def infer_rows(model: SeedVCModel, rows: list[Row]) -> list[torch.Tensor]:
    """Rows of one batch key -> each row's ``plan.out_samples`` samples."""
    if len(rows) == 1:
        return [infer_one(model, rows[0])]
    t = model.timer
    dev, dtype = model.device, model.dtype
    plan, steps, cfg = rows[0].plan, rows[0].steps, rows[0].cfg
    with t("content"):
        wav16 = resample_22k_to_16k(torch.stack([r.window for r in rows]).to(dev))
        content = model._content(wav16)
    with t("length_regulator"):
        cond = model.regulator(content[:, plan.drop_frames :].to(dev, dtype), plan.mel_frames)
    with t("cfm"):
        mel = _solve(model, rows, cond, steps, cfg)
    with t("vocoder"):
        frames = rows[0].vocoder_frames
        if frames is not None and frames < mel.shape[-1]:
            mel = mel[..., -frames:]
        phases, noises = [], []
        for r in rows:  # the draws of model.vocoder.source(), row by row
            r.generators.install(model)
            phases.append(model.vocoder.draw_phase(1, dev, torch.float32))
            noises.append(model.vocoder.draw_noise(1, mel.shape[-1] * 256, dev, torch.float32))
        wave = model.vocoder(mel.float(), phase=torch.cat(phases), noise=torch.cat(noises))
    end = wave.shape[-1] - plan.right_samples
    return list(wave[:, end - plan.out_samples : end])


def _solve(
    model: SeedVCModel, rows: list[Row], cond: torch.Tensor, steps: int, cfg: float
) -> torch.Tensor:
    """CFM.inference for rows with prompts of different lengths -> (B, MEL, M) block mels."""
    est = model.cfm.estimator
    dev = est.cond_x_merge_linear.weight.device
    dtype = est.cond_x_merge_linear.weight.dtype
    b, m = len(rows), cond.shape[1]
    lens = [r.prompt.mel.shape[-1] + m for r in rows]
    total = max(lens)
    x = torch.zeros((b, MEL, total), device=dev, dtype=torch.float32)
    prompt_x = torch.zeros((b, MEL, total), device=dev, dtype=dtype)
    mu = torch.zeros((b, total, cond.shape[-1]), device=dev, dtype=dtype)
    style = torch.cat([r.prompt.style.to(dev, dtype) for r in rows])
    for i, r in enumerate(rows):
        p = r.prompt.mel.shape[-1]
        r.generators.install(model)
        noise = torch.randn((1, MEL, lens[i]), generator=model.cfm.generator(dev), device=dev)
        x[i, :, p : lens[i]] = noise[0, :, p:]  # prompt frames start (and stay) at zero
        prompt_x[i, :, :p] = r.prompt.mel[0].to(dev, dtype)
        mu[i, :p] = r.prompt.cond[0].to(dev, dtype)
        mu[i, p : lens[i]] = cond[i]
    x_lens = torch.tensor(lens, device=dev)
    ctx = est.prepare(prompt_x, style, mu, x_lens, cfg=cfg > 0)
    first = min(r.prompt.mel.shape[-1] for r in rows)
    for t_now, dt in _euler_times(steps):
        v = est.velocity(ctx, x.to(dtype), t_now, first_frame=first).float()
        if cfg > 0:
            v = (1.0 + cfg) * v[:b] - cfg * v[b:]
        for i, r in enumerate(rows):
            p = r.prompt.mel.shape[-1]
            x[i, :, p : lens[i]] += dt * v[i, :, p - first : lens[i] - first]
    return torch.stack([x[i, :, lens[i] - m : lens[i]] for i in range(b)])
