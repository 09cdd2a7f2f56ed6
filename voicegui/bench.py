"""`voicegui bench`: compute per block, RTF and the latency budget; with --jack, a real round trip.

Offline, the voice and passthrough run side by side on the same signal through the same
BlockProcessor, so the engine's own overhead and the voice's cost are measured in one run. With
--jack the real streams run on a JACK server, the app's output is wired back into its input, a
click is injected and its returns are timed in frames.
"""

from __future__ import annotations

import platform
import time
from dataclasses import replace

import numpy as np

from voicegui.engine.loopback import clicks_through
from voicegui.engine.metrics import Metrics
from voicegui.engine.offline import run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import DeviceRef, Settings, with_changes
from voicegui.speech_signal import synthetic_speech
from voicegui.voices.registry import create_voice

JACK_HOSTAPI = "JACK Audio Connection Kit"


def _run_offline(settings: Settings, x: np.ndarray, sr: int) -> dict:
    voice = create_voice(settings.voice)
    if getattr(voice, "speech_detector", None) is not None:
        voice.speech_detector = None  # measure every block, as if speech never stopped
    if getattr(voice, "needs_reference", False):
        voice.prepare(x[: sr * 3], sr)
    metrics = Metrics()
    proc = BlockProcessor(voice, settings, sr, metrics)
    t0 = time.perf_counter()
    run_blocks(proc, x)
    wall = time.perf_counter() - t0
    block_s = proc.block_dev / sr
    pct = metrics.compute_percentiles()
    out = {
        "voice": settings.voice.voice,
        "block_ms": block_s * 1e3,
        "blocks": metrics.count,
        "compute": pct,
        "rtf_mean": pct["mean_ms"] / (block_s * 1e3),
        "rtf_p99": pct["p99_ms"] / (block_s * 1e3),
        "rtf_wall": wall / (len(x) / sr),
        "latency": proc.latency().as_dict(),
        "voice_errors": proc.voice_errors,
        "provider": getattr(voice, "provider", "CPU"),
    }
    if proc.denoiser is not None:
        out["denoise"] = {
            **proc.denoiser.cost(),
            "frames_10ms": proc.denoiser.frames,
            "latency_ms": proc.denoiser.delay_seconds * 1e3,
        }
    profile = getattr(voice, "profile", None)
    if callable(profile):
        out["stages"] = profile()
    voice.close()
    return out


def bench_offline(settings: Settings, seconds: float, sr: int = 48000) -> dict:
    x = synthetic_speech(seconds, sr)
    # gate off: every block costs what speech costs
    settings = with_changes(settings, engine={"gate_threshold_db": -90.0})
    result = {
        "mode": "offline",
        "sample_rate": sr,
        "seconds": seconds,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
    }
    result["voice_run"] = _run_offline(settings, x, sr)
    passthrough = replace(settings, voice=replace(settings.voice, voice="passthrough"))
    result["passthrough_run"] = _run_offline(passthrough, x, sr)
    result["engine_overhead_p99_ms"] = result["passthrough_run"]["compute"]["p99_ms"]
    result["drops"] = 0
    result["xruns"] = 0
    return result


def bench_jack(settings: Settings, seconds: float, clicks: int = 5, period: int = 256) -> dict:
    """Real streams on JACK (started here if none runs), output looped back to input."""
    from voicegui.audio import jack
    from voicegui.audio.backend import reinitialize
    from voicegui.engine.realtime import RealtimeEngine

    server = None
    if not jack.server_running():
        server = jack.DummyServer(period=period).start()
    try:
        reinitialize()  # PortAudio only lists JACK when a server ran at its init
        settings = with_changes(
            settings,
            audio={"input": DeviceRef(JACK_HOSTAPI, ""), "output": DeviceRef(JACK_HOSTAPI, "")},
            engine={"gate_threshold_db": -90.0, "output_gain_db": -6.0},
        )
        return measure_loopback(RealtimeEngine(settings), seconds, clicks)
    finally:
        if server is not None:
            from voicegui.audio.backend import terminate

            terminate()  # PortAudio lets go of JACK first, or its exit handler aborts
            server.stop()


def measure_loopback(engine, seconds: float, clicks: int = 5) -> dict:
    """Start ``engine`` on JACK, loop its output into its input, and time clicks through it."""
    from voicegui.audio import jack

    before = set(jack.ports())
    engine.start()
    try:
        # only the ports this engine just opened (other JACK clients may be running)
        ins, outs = jack.client_ports()
        jack.loop_back([p for p in ins if p not in before], [p for p in outs if p not in before])
        return clicks_through(engine, seconds, clicks)
    finally:
        engine.stop()


def bench_virtual_mic(settings: Settings) -> dict:
    """The latency the virtual microphone ("Send to apps", Linux) adds: made for the measurement
    (or one left behind is taken over), pulses through it at the settings' rate and device
    latency, removed after."""
    from voicegui.audio.devices import list_devices
    from voicegui.audio.route_latency import measure_route
    from voicegui.audio.virtual_mic import VirtualMic, route_for

    vmic = VirtualMic()
    what = vmic.on()
    try:
        device, route = route_for(list_devices("output"))
        result = measure_route(route, device, settings.audio.sample_rate, settings.audio.latency)
    finally:
        vmic.off()
    total = result["measured_ms"]
    adds = None if total is None else max(0.0, total - result["player_reported_ms"])
    return {"device": what, "server": vmic.server, "route": route.device, "adds_ms": adds,
            **result}  # fmt: skip


def bench_loopback(
    settings: Settings,
    seconds: float,
    clicks: int = 5,
    tone_hz: float = 220.0,
) -> dict:
    """The app's audio host process on real devices whose output comes back into the input
    outside the app: a loopback cable, or a virtual microphone that plays what a virtual output
    receives. Clicks time the round trip; a tone shows the voice's pitch shift in what returns.

    The devices are ``settings.audio.input`` / ``output``. The result holds the returned signal
    (``returned``, float32 at ``sample_rate``) for the caller to save or analyse."""
    from voicegui.engine.client import AudioHost, HostError, RemoteEngine
    from voicegui.voices.catalog import VOICES

    info = VOICES.get(settings.voice.voice)
    if info is not None and info.needs_reference:
        raise ValueError(f"the loopback bench runs voices without a reference; not {info.label}")
    settings = with_changes(settings, engine={"gate_threshold_db": -90.0})
    host = AudioHost().start()
    engine = None
    try:
        try:
            host.ensure()
            engine = RemoteEngine(host, settings, host.voice_for(settings.voice))
            engine.start()
            result = host.call("measure_loopback", seconds, clicks, True, tone_hz, timeout=None)
        except HostError as exc:  # e.g. an unknown device: the message lists those that exist
            raise RuntimeError(str(exc)) from exc
        result["input"] = str(settings.audio.input)
        result["output"] = str(settings.audio.output)
        result["audio_host_pid"] = host.pid
        return result
    finally:
        if engine is not None:
            engine.stop("stopped")
        host.close()
