"""`voicegui bench --jack --gui --load K`: the app as a user runs it, under load, measured.

The window is open (offscreen unless a display is set) and plotting; the audio host process runs
the real streams on JACK (a dummy server at ``--period`` frames is started if none runs); K busy
processes compete for the CPUs (a game, a browser); the app's output is looped back into its input
and clicks time the round trip. Counted: PortAudio's status flags (xruns), the output rings'
underruns, dropped blocks; measured: round trip against the computed latency, and the longest
stall of the window's event loop.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

from voicegui.settings import DeviceRef, Settings, with_changes
from voicegui.speech_signal import synthetic_speech
from voicegui.voices.catalog import VOICES

JACK_HOSTAPI = "JACK Audio Connection Kit"
COUNTERS = ("xruns_in", "xruns_out", "underruns", "dropped_blocks")


def _busy() -> None:
    """A process that wants a whole core, like a game's main loop."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


class LoadGenerator:
    def __init__(self, processes: int) -> None:
        self.n = processes
        self.procs: list = []

    def __enter__(self) -> LoadGenerator:
        ctx = multiprocessing.get_context("spawn")
        for _ in range(self.n):
            p = ctx.Process(target=_busy, name="voicegui-bench-load", daemon=True)
            p.start()
            self.procs.append(p)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.join(2.0)


def bench_gui(
    settings: Settings,
    seconds: float,
    load: int = 2,
    period: int = 256,
    monitor: bool = False,
    clicks: int = 5,
    switch_to: str | None = None,
) -> dict:
    """Run the app (window + audio host) on JACK for ``seconds`` under ``load`` busy processes.

    ``switch_to``: a voice chosen in the window after SWITCH_AFTER seconds, as a user does while
    talking; what is measured then is the current voice while that one loads (it keeps playing
    until the new one is ready), ``seconds`` being the longest the load may take."""
    from voicegui.audio import jack

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    server = None
    if not jack.server_running():
        server = jack.DummyServer(period=period).start()
    try:
        with tempfile.TemporaryDirectory(prefix="voicegui-bench-") as home:
            result = _run(
                settings, seconds, load, monitor, clicks, Path(home), server is not None, switch_to
            )
        if server is not None:
            # xruns JACK raised because its own timer woke late (no client can prevent those)
            result["server_late_cycles"] = server.driver_late_wakeups()
            result["server_xrun_messages"] = [
                line for line in server.messages().splitlines() if "XRun" in line
            ][-20:]
        return result
    finally:
        if server is not None:
            server.stop()


def _run(
    settings: Settings, seconds: float, load: int, monitor: bool, clicks: int, home: Path,
    own_server: bool, switch_to: str | None = None,
) -> dict:  # fmt: skip
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from voicegui.engine.client import AudioHost
    from voicegui.presets import AppState, PresetStore
    from voicegui.ui.app import create_application
    from voicegui.ui.controller import Controller
    from voicegui.ui.main_window import MainWindow

    jack_dev = DeviceRef(JACK_HOSTAPI, "system")
    monitor_dev = jack_dev if monitor else DeviceRef()
    settings = with_changes(
        settings,
        audio={"input": jack_dev, "output": jack_dev, "monitor": monitor_dev},
        engine={"gate_threshold_db": -90.0, "output_gain_db": -6.0},
    )
    app = create_application()
    host = AudioHost().start()
    controller = Controller(settings, host=host)
    window = MainWindow(controller, PresetStore(home / "presets"), AppState(home / "state.json"))
    window.resize(1440, 900)
    window.show()
    gaps = _GapMeter()
    result: dict = {}
    try:
        started = controller.start()
        deadline = time.monotonic() + 600
        while not started and controller.start_pending and time.monotonic() < deadline:
            app.processEvents()  # a neural voice loads in the background first
            time.sleep(0.02)
            started = controller.running
        if not started:
            raise RuntimeError("the engine did not start: " + "; ".join(window.banners.texts()))
        frames0 = window.graph.frames
        loop = QEventLoop()
        measured: dict = {}
        finished = threading.Event()

        info = VOICES.get(settings.voice.voice)
        neural = info is not None and info.neural

        def measure() -> None:
            try:
                measured.update(host.call("measure_loopback", seconds, clicks, timeout=None))
            except Exception as exc:
                measured["error"] = str(exc)
            finished.set()

        def speak() -> None:
            # a neural voice skips silence (its speech detector): feed it speech the whole time
            # instead of the loopback's clicks, to measure the window while the voice computes
            time.sleep(seconds)
            snap = host.snapshot()
            measured.update({k: getattr(snap, k) for k in COUNTERS})
            measured["compute"] = controller.metrics.compute_percentiles()
            finished.set()

        if neural:
            speech = synthetic_speech(20.0, controller.engine.sample_rate)
            controller.engine.test_signal(0.5 * speech)

        watch = QTimer()  # the loop ends on the GUI thread once the measurement is back
        watch.timeout.connect(lambda: finished.is_set() and loop.quit())
        watch.start(50)
        switch = (
            _VoiceSwitch(controller, switch_to, seconds, measured, finished) if switch_to else None
        )

        with LoadGenerator(load):
            t0 = QElapsedTimer()
            t0.start()
            gaps.start()
            if switch is not None:
                switch.start()
            else:
                threading.Thread(target=speak if neural else measure, daemon=True).start()
            loop.exec()
            gaps.stop()
            elapsed = t0.elapsed() / 1000.0
        if "error" in measured:
            raise RuntimeError(f"the loopback measurement failed: {measured['error']}")
        snap = controller.engine.snapshot() if controller.engine else host.snapshot()
        # the counters at the end of the measured window (the engine started just before it)
        counts = {k: measured[k] for k in COUNTERS}
        events = [e for e in _event_times(controller.metrics.history()) if e["t"] <= seconds + 1]
        minutes = seconds / 60.0
        result = {
            "mode": "jack-gui-load",
            "seconds": seconds,
            "wall_seconds": round(elapsed, 2),
            "minutes": round(minutes, 3),
            "load_processes": load,
            "period_frames": measured.get("period_frames"),
            "monitor": monitor,
            "jack_server_started": own_server,
            "voice": snap.voice,
            "priority": snap.priority,
            **counts,
            "drift_corrections": snap.drift_corrections,
            "per_minute": {k: round(v / minutes, 2) for k, v in counts.items()},
            "events": events,
            "loopback": measured,
            "gui": {
                "frames_drawn": window.graph.frames - frames0,
                "fps": round((window.graph.frames - frames0) / elapsed, 1) if elapsed else None,
                "longest_stall_ms": round(gaps.longest * 1e3, 1),
            },
            "cpus": os.cpu_count(),
        }
        if switch is not None:
            result["switch"] = {**switch.report(), "banners": window.banners.texts()}
    finally:
        controller.shutdown()
        window.close()
        app.processEvents()
    return result


SWITCH_AFTER = 2.0  # s the current voice plays under the load before the other is chosen
SWITCH_POLL_S = 0.02


class _VoiceSwitch:
    """Chooses another voice in the running app, as the voice panel does, and watches the current
    voice while the new one loads.

    The new voice restarts the streams, and with them the counters; so they are read every
    SWITCH_POLL_S, and the last reading before the swap is what the load cost (its last few
    milliseconds may be missed)."""

    def __init__(self, controller, voice: str | None, timeout: float, measured: dict,
                 finished: threading.Event) -> None:  # fmt: skip
        from PySide6.QtCore import QTimer

        self.controller, self.voice, self.timeout = controller, voice, timeout
        self.measured, self.finished = measured, finished
        self.before = self.last = None
        self.chosen_at = self.last_at = 0.0
        self.loaded_at: float | None = None
        self._timer = QTimer()
        self._timer.timeout.connect(self._poll)

    def start(self) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(SWITCH_AFTER * 1000), self._choose)

    def _choose(self) -> None:
        engine = self.controller.engine
        if engine is None:  # the engine stopped before: nothing to measure (the banners say why)
            self._finish()
            return
        self.before = self.last = engine.snapshot()
        self.chosen_at = self.last_at = time.perf_counter()
        self.controller.change(voice={"voice": self.voice})
        self._timer.start(int(SWITCH_POLL_S * 1000))

    def _poll(self) -> None:
        now = time.perf_counter()
        engine = self.controller.engine
        snap = engine.snapshot() if engine is not None else None
        if snap is None:
            pass
        elif snap.running and snap.voice == self.before.voice and snap.blocks >= self.last.blocks:
            self.last, self.last_at = snap, now
        elif snap.voice == self.voice and not self.controller.loading:
            self.loaded_at = now
        if snap is None or self.loaded_at is not None or now - self.chosen_at > self.timeout:
            self._finish()

    def _finish(self) -> None:
        self._timer.stop()
        self.measured.update(self._during())
        self.finished.set()

    def _during(self) -> dict:
        keys = (*COUNTERS, "blocks")
        if self.before is None:
            return dict.fromkeys(keys, 0)
        return {k: getattr(self.last, k) - getattr(self.before, k) for k in keys}

    def report(self) -> dict:
        from voicegui.engine.loopback import slowest_blocks

        if self.before is None:
            return {"to": self.voice, "chosen": False}
        hist = self.controller.metrics.history()
        span = (hist["t"] >= self.chosen_at) & (hist["t"] <= self.last_at)
        return {
            "to": self.voice,
            "after_s": SWITCH_AFTER,
            "loaded": self.loaded_at is not None,
            "load_s": round(self.loaded_at - self.chosen_at, 2) if self.loaded_at else None,
            "watched_s": round(self.last_at - self.chosen_at, 2),
            "voice_now": self.controller.engine.snapshot().voice if self.controller.engine else "",
            "from": self.before.voice,
            "during_load": self._during(),
            "slowest_blocks": slowest_blocks({k: v[span] for k, v in hist.items()}, 5),
        }


def _event_times(history: dict) -> list[dict]:
    """When each xrun, drop and underrun happened (s since the engine started)."""
    from voicegui.engine.metrics import Metrics

    names = {Metrics.EVENT_XRUN: "xrun", Metrics.EVENT_DROP: "drop",
             Metrics.EVENT_UNDERRUN: "underrun", Metrics.EVENT_ERROR: "voice error"}  # fmt: skip
    t, ev = history["t"], history["events"].astype(int)
    out = []
    for i in ev.nonzero()[0]:
        kinds = [name for flag, name in names.items() if ev[i] & flag]
        out.append({"t": round(float(t[i] - t[0]), 3), "kinds": kinds})
    return out


class _GapMeter:
    """The longest pause of the window's event loop, seen by a 10 ms timer."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.longest = 0.0
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last - 0.010)
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
