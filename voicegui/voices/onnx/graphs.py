"""Export-friendly torch graphs of the Seed-VC stages, built on the loaded torch modules.

Each wrapper reuses the weights of the torch implementation (voicegui.voices.seedvc) and
re-expresses what ONNX cannot carry: complex RoPE becomes real cos/sin pairs, STFT/iSTFT become
convolutions with DFT bases, in-place ops and Python branches on data disappear. Every graph
takes and returns float32 at its edges; ``dtype`` (float16 for GPU providers) is the precision
inside. Numerically sensitive islands (norms, time embedding, RoPE, the sine source's phase
accumulation, the inverse STFT) stay in float32 in every variant, as the torch model keeps them.

Shapes (B = 1):
  content   wav22k (1, N)                                  -> features (1, T, 1024)
  lr        content (1, T, 1024), index (T',) int64        -> cond (1, T', 384)
  prepare   prompt_mel (1, 80, P), prompt_cond (1, P, 384),
            style (1, 192), cond (1, S, 384)               -> frame_const (2, P+S, 384),
                                                              style_tok (2, 1, 384)
  step      x (1, 80, S), t (1,), dt (1,), cfg (1,),
            frame_const (G, P+S, 384), style_tok (G, 1, 384) -> x_next (1, 80, S), velocity
  vocoder   mel (1, 80, M), phase (1, 9, 1), noise (1, 9, 256 F) -> wav (1, 256 F) (last F frames)
  campplus  fbank (1, T, 80)                               -> style (1, 192)

G (1 or 2) is the number of row groups of the step: row group 1 is the unconditional branch of
classifier-free guidance, and G = 1 runs without it. With G = 1 the CFG mix
(1 + cfg) v_c - cfg v_u reduces to v_c whatever cfg is, so one graph serves both.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voicegui.voices.seedvc import dit as D
from voicegui.voices.seedvc import features as FE
from voicegui.voices.seedvc import hift as H
from voicegui.voices.seedvc.campplus import SEG_LEN, CAMPPlus
from voicegui.voices.seedvc.cfm import CFM
from voicegui.voices.seedvc.length_regulator import InterpolateRegulator

F32 = torch.float32


def _rms_norm32(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm computed in float32 (x^2 overflows float16 for |x| > 255)."""
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.float()).to(x.dtype)


# --------------------------------------------------------------------------- content encoder


class ContentGraph(nn.Module):
    """22.05 kHz waveform -> XLS-R features: resampler, utterance normalisation, encoder."""

    def __init__(self, encoder: nn.Module, dtype: torch.dtype = F32) -> None:
        super().__init__()
        model = encoder.model
        # Weight norm of the positional conv folded into a plain weight: one constant, no
        # parametrisation ops in the graph.
        conv = model.encoder.pos_conv_embed.conv
        if hasattr(conv, "parametrizations"):
            torch.nn.utils.parametrize.remove_parametrizations(conv, "weight")
        elif hasattr(conv, "weight_g"):
            torch.nn.utils.remove_weight_norm(conv)
        self.model = model.to(dtype)
        kernel, width = FE._resample_kernel(torch.device("cpu"), F32)
        self.register_buffer("rs_kernel", kernel.clone())
        self.rs_width = width
        self.dtype = dtype

    def forward(self, wav: Tensor) -> Tensor:
        n = wav.shape[-1]
        x = F.pad(wav, (self.rs_width, self.rs_width + FE.RS_ORIG))
        y = F.conv1d(x[:, None], self.rs_kernel, stride=FE.RS_ORIG)
        y = y.transpose(1, 2).reshape(1, -1)
        y = y[:, : (FE.RS_NEW * n + FE.RS_ORIG - 1) // FE.RS_ORIG]  # ceil(n * 320 / 441)
        mean = y.mean(dim=-1, keepdim=True)
        var = (y - mean).pow(2).mean(dim=-1, keepdim=True)
        y = (y - mean) / torch.sqrt(var + 1e-7)
        return self.model(y.to(self.dtype)).last_hidden_state.float()


# --------------------------------------------------------------------------- length regulator


def _mish(x: Tensor) -> Tensor:
    # Spelled out: the ONNX Mish op has no kernel on some GPU providers.
    return x * torch.tanh(F.softplus(x))


class LengthRegulatorGraph(nn.Module):
    """Content (1, T, 1024) and nearest-neighbour source indices (T',) -> condition (1, T', 384).

    The indices (legacy 'nearest', offset by the dropped frames) are computed by the host: a
    gather instead of an interpolation with a data-dependent size.
    """

    def __init__(self, lr: InterpolateRegulator, dtype: torch.dtype = F32) -> None:
        super().__init__()
        self.lr = lr.to(dtype)
        self.dtype = dtype

    def forward(self, content: Tensor, index: Tensor) -> Tensor:
        x = content.index_select(1, index).to(self.dtype)
        h = self.lr.content_in_proj(x).transpose(1, 2)
        mods = list(self.lr.model)
        for i in range(0, len(mods) - 1, 3):
            conv, norm = mods[i], mods[i + 1]
            h = conv(h)
            # GroupNorm with one group: statistics over the whole (C, T) window, in float32.
            h32 = h.float()
            mean = h32.mean(dim=(1, 2), keepdim=True)
            var = (h32 - mean).pow(2).mean(dim=(1, 2), keepdim=True)
            h32 = (h32 - mean) / torch.sqrt(var + norm.eps)
            h32 = h32 * norm.weight.float()[:, None] + norm.bias.float()[:, None]
            h = _mish(h32).to(self.dtype)
        h = mods[-1](h)
        return h.transpose(1, 2).float()


def nearest_index(t_in: int, t_out: int, offset: int = 0) -> np.ndarray:
    """Source frame per output frame of torch's legacy 'nearest' interpolation (float32 scale)."""
    if t_out == t_in:
        idx = np.arange(t_out, dtype=np.int64)
    elif t_out == 2 * t_in:
        idx = np.arange(t_out, dtype=np.int64) >> 1
    else:
        scale = np.float32(t_in) / np.float32(t_out)
        idx = np.floor(np.arange(t_out, dtype=np.float32) * scale).astype(np.int64)
        idx = np.minimum(idx, t_in - 1)
    return idx + offset


# --------------------------------------------------------------------------- DiT / CFM step


class DiTPrepareGraph(nn.Module):
    """Per-solve constants of the DiT input merge, for the conditional and unconditional rows."""

    def __init__(self, cfm: CFM, dtype: torch.dtype = F32) -> None:
        super().__init__()
        self.dit = cfm.estimator.to(dtype)
        self.dtype = dtype

    def forward(
        self, prompt_mel: Tensor, prompt_cond: Tensor, style: Tensor, cond: Tensor
    ) -> tuple[Tensor, Tensor]:
        dit, dt = self.dit, self.dtype
        p = prompt_mel.shape[-1]
        mu = torch.cat([prompt_cond, cond], dim=1).to(dt)  # (1, T, 384)
        w = dit.cond_x_merge_linear.weight
        w_p, w_c = w[:, D.MEL : 2 * D.MEL], w[:, 2 * D.MEL :]
        bias = dit.cond_x_merge_linear.bias
        # prompt_x is the prompt mel on the first P frames and zero after them
        prompt_term = F.linear(prompt_mel.transpose(1, 2).to(dt), w_p)  # (1, P, 384)
        prompt_term = F.pad(prompt_term, (0, 0, 0, mu.shape[1] - p))
        const_c = prompt_term + F.linear(dit.cond_projection(mu), w_c, bias)
        # unconditional rows: prompt_x, style and cond all zero -> only biases remain
        const_u = F.linear(dit.cond_projection.bias, w_c, bias).expand_as(const_c)
        style_c = dit.style_in(style.to(dt))[:, None]
        style_u = dit.style_in.bias.expand_as(style_c)
        frame_const = torch.cat([const_c, const_u], dim=0).float()
        style_tok = torch.cat([style_c, style_u], dim=0).float()
        return frame_const, style_tok


class DiTStepGraph(nn.Module):
    """One Euler step of the CFM with the CFG mix folded in.

    x (1, 80, S) holds the source frames only: the prompt frames of the torch solver's x are
    zero throughout and their velocities are discarded, so they enter as constants and the last
    block computes queries for the source frames alone.
    """

    def __init__(self, cfm: CFM, dtype: torch.dtype = F32) -> None:
        super().__init__()
        self.dit = cfm.estimator.to(dtype)
        self.dtype = dtype
        self.register_buffer("t_freqs", D.timestep_freqs(D.TIME_FREQ_DIM // 2))
        inv = 1.0 / (D.ROPE_BASE ** (torch.arange(0, D.HEAD_DIM, 2, dtype=F32) / D.HEAD_DIM))
        self.register_buffer("rope_inv", inv)
        # RoPE rotates adjacent pairs (x[2i], x[2i+1]) of q and k. Reordering every head's q and
        # k rows of wqkv to evens-then-odds turns the pairs into two contiguous halves, so the
        # graph rotates with two slices instead of strided gathers; q.k is unchanged by a
        # permutation applied to both.
        order = torch.cat([torch.arange(0, D.HEAD_DIM, 2), torch.arange(1, D.HEAD_DIM, 2)])
        rows = torch.cat([order + h * D.HEAD_DIM for h in range(2 * D.HEADS)])  # q and k heads
        with torch.no_grad():
            for blk in self.dit.transformer.layers:
                w = blk.attention.wqkv.weight
                w[: 2 * D.HIDDEN] = w[: 2 * D.HIDDEN][rows].clone()

    def _rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """RoPE on x (B, H, L, 64) whose head dims are stored halves-first (see __init__), by
        (L, 32) tables, in float32: (a cos - c sin, c cos + a sin) for each pair (a, c)."""
        x32 = x.float()
        half = D.HEAD_DIM // 2
        a, c = x32[..., :half], x32[..., half:]
        return torch.cat([a * cos - c * sin, c * cos + a * sin], dim=-1).to(x.dtype)

    def _attention(
        self, attn: nn.Module, x: Tensor, cos: Tensor, sin: Tensor, first: int | Tensor
    ) -> Tensor:
        b, n, _ = x.shape
        w = attn.wqkv.weight
        if isinstance(first, int) and first == 0:
            qkv = F.linear(x, w).view(b, n, 3, D.HEADS, D.HEAD_DIM).permute(2, 0, 3, 1, 4)
            q = self._rope(qkv[0], cos, sin)
            k = self._rope(qkv[1], cos, sin)
            v = qkv[2]
        else:
            q = F.linear(x[:, first:], w[: D.HIDDEN]).view(b, -1, D.HEADS, D.HEAD_DIM)
            q = self._rope(q.transpose(1, 2), cos[first:], sin[first:])
            kv = F.linear(x, w[D.HIDDEN :]).view(b, n, 2, D.HEADS, D.HEAD_DIM)
            kv = kv.permute(2, 0, 3, 1, 4)
            k = self._rope(kv[0], cos, sin)
            v = kv[1]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(D.HEAD_DIM))
        probs = torch.softmax(scores.float(), dim=-1).to(x.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, -1, D.HIDDEN)
        return attn.wo(out)

    def _block(self, blk: nn.Module, x: Tensor, cos: Tensor, sin: Tensor, skip, first) -> Tensor:
        if skip is not None:
            x = blk.skip_in_linear(torch.cat([x, skip], dim=-1))
        an = blk.attention_norm.norm
        h = self._attention(blk.attention, _rms_norm32(x, an.weight, an.eps), cos, sin, first)
        h = h + (x if isinstance(first, int) and first == 0 else x[:, first:])
        fn = blk.ffn_norm.norm
        y = _rms_norm32(h, fn.weight, fn.eps)
        ff = blk.feed_forward
        return h + ff.w2(F.silu(ff.w1(y)) * ff.w3(y))

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        dt: Tensor,
        cfg: Tensor,
        frame_const: Tensor,
        style_tok: Tensor,
    ) -> tuple[Tensor, Tensor]:
        dit, dtype = self.dit, self.dtype
        g, n_frames, _ = frame_const.shape
        s = x.shape[-1]
        p = n_frames - s
        # time token: [cos, sin] of 1000 t freqs in float32, then the MLP
        args = D.TIME_SCALE * t.float()[:, None] * self.t_freqs[None]
        t_emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        t1 = dit.t_embedder.mlp(t_emb.to(dtype))  # (1, 384)
        t1g = t1.expand(g, D.HIDDEN)
        # frame tokens: noisy-mel columns of the merge linear plus the per-solve constants
        w_x = dit.cond_x_merge_linear.weight[:, : D.MEL]
        xw = F.linear(x.transpose(1, 2).to(dtype), w_x)  # (1, S, 384)
        frames = frame_const.to(dtype) + F.pad(xw, (0, 0, p, 0))
        tokens = torch.cat([t1g[:, None], style_tok.to(dtype), frames], dim=1)
        n = tokens.shape[1]
        angles = torch.arange(n, dtype=F32)[:, None] * self.rope_inv[None]
        cos, sin = torch.cos(angles), torch.sin(angles)
        first = D.N_LEADING + p
        half = D.DEPTH // 2
        skips: list[Tensor] = []
        h = tokens
        layers = list(dit.transformer.layers)
        for i, blk in enumerate(layers):
            skip = skips.pop() if i > half else None
            h = self._block(blk, h, cos, sin, skip, first if i == len(layers) - 1 else 0)
            if i < half:
                skips.append(h)
        norm = dit.transformer.norm
        scale, shift = norm.project_layer(t1g[:, None]).chunk(2, dim=-1)
        h = scale * _rms_norm32(h, norm.norm.weight, norm.norm.eps) + shift
        v = dit.final_mlp(h).transpose(1, 2).float()  # (G, 80, S)
        w = cfg.float().reshape(1, 1, 1)
        v = (1.0 + w) * v[:1] - w * v[g - 1 :]
        return x + dt.float().reshape(1, 1, 1) * v, v


# --------------------------------------------------------------------------- HiFT vocoder


def _dft_bases(n_fft: int) -> tuple[Tensor, Tensor, Tensor]:
    """Forward basis (2K, 1, n) with the analysis window, inverse basis (2K, 1, n) with the
    synthesis window and 1/n, and the squared window (1, 1, n); K = n/2 + 1 bins."""
    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float64)
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    ang = 2 * np.pi * np.outer(k, n) / n_fft
    fwd = np.concatenate([np.cos(ang) * window, -np.sin(ang) * window])
    c = np.where((k == 0) | (k == n_fft // 2), 1.0, 2.0)[:, None]
    inv = np.concatenate([c * np.cos(ang), -c * np.sin(ang)]) * window / n_fft
    as_t = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return as_t(fwd)[:, None], as_t(inv)[:, None], as_t(window**2)[None, None]


class _Snake32(nn.Module):
    """Snake in float32: for small alpha, 1/alpha overflows float16 and sin(alpha x)^2
    underflows, and their product becomes NaN."""

    def __init__(self, snake: H.Snake) -> None:
        super().__init__()
        self.alpha = nn.Parameter(snake.alpha.detach().float(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        a = self.alpha[None, :, None]
        x32 = x.float()
        return (x32 + (1.0 / (a + 1e-9)) * torch.sin(x32 * a).pow(2)).to(x.dtype)


class VocoderGraph(nn.Module):
    """HiFT over the last F frames of a mel, F = noise length / 256 (the noise sets the span)."""

    def __init__(self, hift: H.HiFTGenerator, dtype: torch.dtype = F32) -> None:
        super().__init__()
        if dtype != F32:
            for blk in [*hift.resblocks, *hift.source_resblocks]:
                for acts in (blk.activations1, blk.activations2):
                    for i, act in enumerate(acts):
                        acts[i] = _Snake32(act)
        self.hift = hift.to(dtype)
        self.hift.m_source.float()
        for mod in self.hift.modules():
            if isinstance(mod, _Snake32):
                mod.float()
        self.dtype = dtype
        fwd, inv, wsq = _dft_bases(H.ISTFT_NFFT)
        self.register_buffer("stft_fwd", fwd)
        self.register_buffer("stft_inv", inv)
        self.register_buffer("win_sq", wsq)
        self.register_buffer("harmonics", torch.arange(1, H.N_HARMONICS + 1, dtype=F32)[:, None])

    def _source(self, f0: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        """f0 (1, F) Hz -> excitation (1, 1, 256 F), float32 throughout."""
        f0_up = f0[:, :, None].expand(-1, -1, H.HOP).reshape(1, 1, -1)  # nearest x256
        inc = (f0_up * self.harmonics[None]) / H.SAMPLE_RATE  # float32 increments
        # accumulated in float64 and rounded per partial sum, as torch's CPU cumsum does
        cycles = torch.cumsum(inc.double(), dim=-1).float()
        theta = (2 * np.pi) * (cycles - torch.floor(cycles))
        sines = H.SINE_AMP * torch.sin(theta + phase)
        uv = (f0_up > H.VOICED_THRESHOLD).float()
        noise_amp = uv * H.NOISE_STD + (1 - uv) * (H.SINE_AMP / 3)
        sines = sines * uv + noise_amp * noise
        lin = self.hift.m_source.l_linear
        mixed = torch.matmul(lin.weight[None], sines) + lin.bias[None, :, None]
        return torch.tanh(mixed)

    def forward(self, mel: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        return self._vocode(mel, phase, noise, None)

    def _vocode(self, mel: Tensor, phase: Tensor, noise: Tensor, f0: Tensor | None) -> Tensor:
        hift, dtype = self.hift, self.dtype
        frames = noise.shape[-1] // H.HOP
        mel = mel[:, :, mel.shape[-1] - frames :].to(dtype)
        f0 = hift.f0_predictor(mel).float() if f0 is None else f0.float()
        source = self._source(f0, phase.float(), noise.float())  # (1, 1, N)
        pad = H.ISTFT_NFFT // 2
        src = F.pad(source, (pad, pad), mode="reflect")
        s_stft = F.conv1d(src, self.stft_fwd, stride=H.ISTFT_HOP).to(dtype)  # (1, 18, N/4+1)
        x = hift.conv_pre(mel)
        n_ups = len(hift.ups)
        nk = len(H.RESBLOCK_KERNELS)
        for i in range(n_ups):
            x = hift.ups[i](F.leaky_relu(x, H.LRELU_SLOPE))
            if i == n_ups - 1:
                x = torch.cat([x[:, :, 1:2], x], dim=-1)  # ReflectionPad1d((1, 0))
            x = x + hift.source_resblocks[i](hift.source_downs[i](s_stft))
            blocks = hift.resblocks[i * nk : (i + 1) * nk]
            acc = blocks[0](x)
            for blk in blocks[1:]:
                acc = acc + blk(x)
            x = acc / nk
        x = hift.conv_post(F.leaky_relu(x)).float()
        half = H.ISTFT_NFFT // 2 + 1
        mag = torch.clamp(torch.exp(x[:, :half]), max=1e2)
        ph = torch.sin(x[:, half:])
        spec = torch.cat([mag * torch.cos(ph), mag * torch.sin(ph)], dim=1)
        # inverse STFT: overlap-add of windowed inverse-DFT frames over the window envelope
        ola = F.conv_transpose1d(spec, self.stft_inv, stride=H.ISTFT_HOP)
        ones = torch.ones_like(spec[:, :1])
        env = F.conv_transpose1d(ones, self.win_sq, stride=H.ISTFT_HOP)
        wav = (ola / env)[:, 0, pad : ola.shape[-1] - pad]
        return torch.clamp(wav, -H.AUDIO_LIMIT, H.AUDIO_LIMIT)


class ExplicitF0VocoderGraph(VocoderGraph):
    """Parity variant: an f0 contour (1, F) in Hz replaces the predicted one."""

    def forward(self, mel: Tensor, phase: Tensor, noise: Tensor, f0: Tensor) -> Tensor:  # type: ignore[override]
        return self._vocode(mel, phase, noise, f0)


# --------------------------------------------------------------------------- CAMPPlus


def _segment_mean(x: Tensor) -> Tensor:
    """Mean of each 100-frame segment (the last may be partial) repeated over its frames."""
    b, c, t = x.shape
    nseg = (t + SEG_LEN - 1) // SEG_LEN
    xp = F.pad(x, (0, nseg * SEG_LEN - t))
    sums = xp.reshape(b, c, nseg, SEG_LEN).sum(-1)
    starts = torch.arange(nseg, dtype=F32) * SEG_LEN
    counts = torch.clamp(t - starts, max=float(SEG_LEN))
    seg = sums / counts
    return seg[..., None].expand(b, c, nseg, SEG_LEN).reshape(b, c, nseg * SEG_LEN)[..., :t]


class CAMPPlusGraph(nn.Module):
    """Mean-normalised fbank (1, T, 80) -> speaker style (1, 192), float32."""

    def __init__(self, model: CAMPPlus) -> None:
        super().__init__()
        for mod in model.modules():
            if type(mod).__name__ == "CAMLayer":
                mod._segment_mean = _segment_mean  # per instance: avg_pool ceil_mode avoided
        self.model = model.float()

    def forward(self, fbank: Tensor) -> Tensor:
        return self.model(fbank)
