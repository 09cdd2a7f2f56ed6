"""One block through the whole chain: gain -> denoise -> gate -> resample -> frame -> voice ->
SOLA -> resample -> bypass/error mix -> push-to-talk/mute -> gain. Shared by the live engine and
the offline (virtual clock) path, so both do exactly the same thing.

The noise suppressor exists only once it has been switched on: with it off from the start, the
chain is the same arithmetic as without it (bit for bit). Switched on live, it joins with its fixed
delay (the timeline moves once by that delay: a short gap); switched off live, it keeps running at
mix 0 with the same delay until the next restart, so the timing never jumps back and forth.
The dry (bypass) signal is taken after it, so both dry and voice are cleaned and stay aligned.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from voicegui.engine.delay import DelayLine
from voicegui.engine.denoise import Denoiser
from voicegui.engine.fallback import BuiltinFallback
from voicegui.engine.framing import Framer
from voicegui.engine.gate import Gate
from voicegui.engine.metrics import LatencyBudget, Metrics, level_db
from voicegui.engine.resample import StreamResampler, block_quantum
from voicegui.engine.sola import Sola, equal_power_fades
from voicegui.engine.talk import OutputGate
from voicegui.settings import EngineSettings, Settings, VoiceSettings
from voicegui.voices.base import BlockInfo, Voice

SOLA_SEARCH_MAX = 0.01  # seconds; the offset search never exceeds this (nor the crossfade)
SOURCE_FADE = 0.005  # seconds of crossfade when switching between wet, dry and silence


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def voice_params(v: VoiceSettings, e: EngineSettings) -> dict:
    return {
        "pitch": v.pitch,
        "formant": v.formant,
        "diffusion_steps": v.diffusion_steps,
        "cfg_rate": v.cfg_rate,
        "max_prompt_time": v.max_prompt_time,
        "style_from_prompt": v.style_from_prompt,
        "extra_dit_left_time": e.extra_dit_left_time,
        "index_rate": v.index_rate,
        "protect": v.protect,
    }


@dataclass(frozen=True)
class Geometry:
    """Block and context sizes for one configuration, in device and voice samples."""

    device_rate: int
    voice_rate: int
    block_dev: int
    block: int
    left: int
    right: int
    crossfade: int
    search: int


def geometry(engine: EngineSettings, device_rate: int, voice_rate: int) -> Geometry:
    q = block_quantum(device_rate, voice_rate)
    block_dev = max(q, round(engine.block_time * device_rate / q) * q)
    block = block_dev * voice_rate // device_rate
    crossfade = min(round(engine.crossfade_time * voice_rate), block)
    search = min(round(SOLA_SEARCH_MAX * voice_rate), crossfade)
    # the SOLA margin sits on top of the context, so the voice sees the full context before it
    left = round(engine.extra_left_time * voice_rate) + crossfade + search
    right = round(engine.extra_right_time * voice_rate)
    return Geometry(device_rate, voice_rate, block_dev, block, left, right, crossfade, search)


class BlockProcessor:
    """Not thread-safe: owned by the audio thread (or the offline runner)."""

    def __init__(
        self, voice: Voice, settings: Settings, device_rate: int, metrics: Metrics | None = None
    ) -> None:
        self.voice = voice
        self.metrics = metrics or Metrics()
        self.device_rate = device_rate
        self.voice_rate = voice.configure(device_rate)
        self.settings = settings
        self._pending: Settings | None = None
        self.block_index = 0
        self.voice_errors = 0
        self.last_error = ""
        self._source = "wet"
        self._io_latency = (0.0, 0.0, 0.0)  # buffer, device in, device out: set by the live engine
        self._route_latency = 0.0  # the virtual microphone's part: set by the live engine
        self._latency: LatencyBudget | None = None  # cached: it only changes with the geometry
        self.denoiser: Denoiser | None = None  # created when noise suppression is first on
        self._spare_denoiser: Denoiser | None = None  # built by ``request``, off the block thread
        self.output_gate: OutputGate | None = None  # push-to-talk and mute (the live engine's)
        self.fallback: BuiltinFallback | None = None  # on_voice_error 'builtin'
        self._build(settings)
        voice.update(voice_params(settings.voice, settings.engine))

    # ---- configuration ------------------------------------------------------------------
    def _build(self, s: Settings) -> None:
        g = geometry(s.engine, self.device_rate, self.voice_rate)
        self.geom = g
        self._latency = None
        self.stateful = bool(getattr(self.voice, "stateful", False))
        self.in_rs = StreamResampler(self.device_rate, self.voice_rate, g.block_dev)
        self.out_rs = StreamResampler(self.voice_rate, self.device_rate, g.block)
        if self.stateful:
            self.framer = None
            self.sola = None
        else:
            self.framer = Framer(g.block, g.left, g.right)
            self.sola = Sola(g.block, g.crossfade, g.search)
        self._apply_live(s, live=False)
        self._make_dry()
        self._fade_in, self._fade_out = equal_power_fades(
            min(g.block_dev, max(1, round(SOURCE_FADE * self.device_rate)))
        )

    def _apply_live(self, s: Settings, live: bool = True) -> None:
        e = s.engine
        self.in_gain = db_to_gain(e.input_gain_db)
        self.out_gain = db_to_gain(e.output_gain_db)
        detector = getattr(self.voice, "speech_detector", None)
        old_gate = getattr(self, "gate", None)
        self.gate = Gate(e.gate_threshold_db, e.gate_hold_time, detector)
        if old_gate is not None:
            self.gate._quiet_for, self.gate.open = old_gate._quiet_for, old_gate.open
        fresh = False
        if e.denoise and self.denoiser is None:
            spare, self._spare_denoiser = self._spare_denoiser, None
            try:
                self.denoiser = spare or Denoiser(self.device_rate, self.geom.block_dev)
                fresh = True
            except (ImportError, OSError) as exc:
                if not live:
                    raise
                self.last_error = f"noise suppression unavailable: {exc}"
            self._latency = None
        if self.denoiser is not None:
            self.denoiser.set_mix(e.denoise_mix if e.denoise else 0.0, ramp=not fresh)

    def _make_dry(self) -> None:
        """The dry path and the built-in fallback, both aligned with the voice's output."""
        self.dry = DelayLine(self.dry_delay_dev(), self.geom.block_dev)
        self._make_fallback()

    def _make_fallback(self) -> None:
        """The built-in voice beside another voice when it is the chosen fallback."""
        s = self.settings
        self.fallback = None
        if s.engine.on_voice_error == "builtin" and getattr(self.voice, "name", "") != "dsp":
            delay = self.dry_delay_dev()
            self.fallback = BuiltinFallback(self.device_rate, self.geom.block_dev, delay)
            self.fallback.update(voice_params(s.voice, s.engine))

    def request(self, settings: Settings) -> None:
        """Called from any thread; taken in before the next block (one reference swap).

        Switching noise suppression on for the first time builds the suppressor here, in the
        caller's thread, so the block thread does not load a library or allocate for it.
        """
        if settings.engine.denoise and self.denoiser is None and self._spare_denoiser is None:
            # on failure the block thread tries again and reports why it cannot
            with contextlib.suppress(ImportError, OSError):
                self._spare_denoiser = Denoiser(self.device_rate, self.geom.block_dev)
        self._pending = settings

    def _take_pending(self) -> None:
        new, self._pending = self._pending, None
        if new is None or new == self.settings:
            return
        old, self.settings = self.settings, new
        if (
            new.voice != old.voice
            or new.engine.extra_dit_left_time != old.engine.extra_dit_left_time
        ):
            self.voice.update(voice_params(new.voice, new.engine))
            if self.fallback is not None:
                self.fallback.update(voice_params(new.voice, new.engine))
        framing = ("crossfade_time", "extra_left_time", "extra_right_time")
        if any(getattr(new.engine, f) != getattr(old.engine, f) for f in framing):
            g_old = self.geom
            self.geom = geometry(new.engine, self.device_rate, self.voice_rate)
            self._latency = None
            assert self.geom.block == g_old.block, "block changes need a restart"
            if self.framer is not None:
                self.framer = self.framer.resized(self.geom.left, self.geom.right)
                self.sola = Sola(self.geom.block, self.geom.crossfade, self.geom.search)
            self._make_dry()
        had_denoiser = self.denoiser is not None
        self._apply_live(new)
        if self.denoiser is not None and not had_denoiser:
            self._make_dry()
        elif new.engine.on_voice_error != old.engine.on_voice_error:
            self._make_fallback()

    # ---- latency --------------------------------------------------------------------------
    @property
    def io_latency(self) -> tuple[float, float, float]:
        return self._io_latency

    @io_latency.setter
    def io_latency(self, value: tuple[float, float, float]) -> None:
        self._io_latency = value
        self._latency = None

    @property
    def route_latency(self) -> float:
        """What the way to the virtual microphone adds after the output device (0: none)."""
        return self._route_latency

    @route_latency.setter
    def route_latency(self, value: float) -> None:
        self._route_latency = value
        self._latency = None

    def latency(self) -> LatencyBudget:
        if self._latency is None:
            self._latency = self._compute_latency()
        return self._latency

    def _compute_latency(self) -> LatencyBudget:
        g = self.geom
        if self.stateful:
            lookahead, sola = float(self.voice.lookahead()), 0.0
        else:
            lookahead = g.right / g.voice_rate + float(self.voice.lookahead())
            sola = (g.crossfade + g.search - g.search // 2) / g.voice_rate
        buffer, device_in, device_out = self.io_latency
        # a remote voice answers each block one (or more) blocks later: the network round trip
        # and the server's compute hide in that time, and it is latency like any other
        network = int(getattr(self.voice, "pipeline_blocks", 0)) * g.block / g.voice_rate
        return LatencyBudget(
            block=g.block_dev / g.device_rate,
            lookahead=lookahead,
            sola=sola,
            resampler=self.in_rs.delay_seconds + self.out_rs.delay_seconds,
            denoise=self.denoiser.delay_seconds if self.denoiser is not None else 0.0,
            network=network,
            buffer=buffer,
            device_in=device_in,
            device_out=device_out,
            virtual_mic=self._route_latency,
        )

    def wet_delay_dev(self) -> int:
        """Device samples from an input block to where the voice's output of it starts."""
        lat = self.latency()
        return max(0, round((lat.algorithmic - lat.block) * self.device_rate))

    def dry_delay_dev(self) -> int:
        """Delay for the dry (bypass) signal, which is taken after the noise suppressor."""
        lat = self.latency()
        return max(0, round((lat.algorithmic - lat.block - lat.denoise) * self.device_rate))

    @property
    def block_dev(self) -> int:
        return self.geom.block_dev

    # ---- the block ------------------------------------------------------------------------
    def process(self, block: np.ndarray) -> np.ndarray:
        """``block_dev`` device samples in -> ``block_dev`` device samples out."""
        t0 = time.perf_counter()
        if self._pending is not None:
            self._take_pending()
        g = self.geom
        x = np.asarray(block, dtype=np.float32) * self.in_gain
        in_db = level_db(x)  # the microphone's level, before any suppression
        gate_db = in_db
        if self.denoiser is not None:
            x = self.denoiser.process(x)
            gate_db = level_db(x)
        block_seconds = g.block_dev / g.device_rate
        was_open = self.gate.open
        speech = self.gate.update(gate_db, x, g.device_rate, block_seconds)

        xv = self.in_rs.process(x)
        window = self.framer.push(xv) if self.framer is not None else xv
        dry = self.dry.process(x)
        builtin = self.fallback.process(x) if self.fallback is not None else None

        wet_v = None
        events = 0
        if speech:
            if not was_open:
                self.restart_voice_stream()
            wet_v = self._run_voice(window)
            if wet_v is None:
                events |= Metrics.EVENT_ERROR
        elif was_open and self.sola is not None:
            self.sola.reset()
        wet = self.out_rs.process(wet_v if wet_v is not None else np.zeros(g.block, np.float32))

        s = self.settings.engine
        if s.bypass:
            source = "dry"
        elif not speech:
            source = "silence"
        elif wet_v is None:
            source = s.on_voice_error
            if source == "builtin" and builtin is None:
                source = "dry"  # the built-in voice is the voice: it failed itself
        else:
            source = "wet"
        signals = {"wet": wet, "dry": dry, "silence": None, "builtin": builtin}
        out = self._mix(signals, source)
        if self.output_gate is not None:
            self.output_gate.apply(out)
        out *= self.out_gain
        np.clip(out, -1.0, 1.0, out=out)

        compute = time.perf_counter() - t0
        self.block_index += 1
        lat = self.latency()
        out_db = level_db(out)
        self.metrics.record(
            time.perf_counter(),
            compute * 1e3,
            compute / block_seconds,
            in_db,
            out_db,
            lat.algorithmic * 1e3,
            events,
        )
        self.metrics.publish(
            blocks=self.block_index,
            compute_ms=compute * 1e3,
            rtf=compute / block_seconds,
            input_db=in_db,
            output_db=out_db,
            gated=not speech,
            voice_errors=self.voice_errors,
            last_error=self.last_error,
            latency=lat,
        )
        return out

    def restart_voice_stream(self) -> None:
        if self.stateful:
            self.voice.reset()
        elif self.sola is not None:
            self.sola.reset()

    def _run_voice(self, window: np.ndarray) -> np.ndarray | None:
        g = self.geom
        try:
            if self.stateful:
                info = BlockInfo(self.block_index, g.block, 0, 0, 0)
                out = self.voice.convert(window, info)
                expected = g.block
            else:
                info = BlockInfo(self.block_index, g.block, g.left, g.right, g.search + g.crossfade)
                out = self.voice.convert(window, info)
                expected = self.sola.input_length
            out = np.asarray(out, dtype=np.float32).reshape(-1)
            if len(out) != expected:
                raise ValueError(f"voice returned {len(out)} samples, expected {expected}")
            if not np.all(np.isfinite(out)):
                raise ValueError("voice returned NaN or infinite samples")
            return out if self.stateful else self.sola.splice(out)
        except Exception as exc:  # a failing voice must never stop the audio
            self.voice_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.restart_voice_stream()
            return None

    def _mix(self, signals: dict, source: str) -> np.ndarray:
        n = self.geom.block_dev
        target = signals[source]
        out = target.copy() if target is not None else np.zeros(n, np.float32)
        if source != self._source:
            prev = signals[self._source]
            f = len(self._fade_in)
            out[:f] *= self._fade_in
            if prev is not None:
                out[:f] += prev[:f] * self._fade_out
            self._source = source
        return out

    def reset(self) -> None:
        """Forget all stream state (after a restart or a long stall)."""
        self.in_rs.reset()
        self.out_rs.reset()
        if self.denoiser is not None:
            self.denoiser.reset()
        if self.fallback is not None:
            self.fallback.reset()
        if self.framer is not None:
            self.framer.reset()
            self.sola.reset()
        self.voice.reset()
