"""`voicegui live`: the same audio host as the app, without the window.

Prints one status line a second (latency, RTF, xruns, underruns, drops) and a JSON summary at the
end; runs until Ctrl-C or ``--seconds``. Stopping always stops the streams first, so no device is
left held.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TextIO

from voicegui.engine.audiofile import read_audio, to_mono
from voicegui.engine.client import HOST_DIED, AudioHost, HostError, RemoteEngine
from voicegui.settings import DeviceRef, Settings, with_changes
from voicegui.voices.catalog import VOICES, heavy


def parse_device(text: str | None) -> DeviceRef | None:
    """``HOSTAPI:NAME`` (or just ``NAME``) as a device reference; None when not given."""
    if not text:
        return None
    api, sep, name = text.partition(":")
    return DeviceRef(api, name) if sep else DeviceRef("", text)


def run_live(
    settings: Settings,
    seconds: float | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    record: str | None = None,
    record_dry: bool = False,
) -> int:
    """Run until Ctrl-C or ``seconds``; ``record``: also record the voice to that WAV or FLAC
    file (with ``record_dry``, the dry input to a "-dry" file alongside)."""
    events: list[tuple[str, str]] = []
    host = AudioHost(on_event=lambda kind, message: events.append((kind, message))).start()
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    engine: RemoteEngine | None = None
    t0 = time.monotonic()
    try:
        info = VOICES.get(settings.voice.voice)
        reference = None
        if info is not None and info.needs_reference:
            if not settings.voice.reference:
                print(f"voicegui live: {info.label} needs --reference FILE", file=err)
                return 2
            data, sr = read_audio(settings.voice.reference)
            reference = (to_mono(data), sr)
        try:
            host.ensure()
            settings = _send_to_apps(host, settings, err)
            if settings is None:
                return 2
            _warn_about_input(host, settings, err)
            if heavy(settings.voice.voice):
                print(f"Loading {info.label}…", file=err, flush=True)
            voice = host.voice_for(settings.voice, reference)
            engine = RemoteEngine(host, settings, voice)
            engine.start()
        except HostError as exc:  # an unknown device's message lists the devices that exist
            print(f"voicegui live: {exc}", file=err)
            return 2
        if engine.rate_note:
            print(f"note: {engine.rate_note}", file=err)
        vmic = engine.info.get("virtual_mic") or {}
        if vmic.get("on"):
            print(vmic["message"], file=err, flush=True)
        recording: dict | None = None
        if record:
            try:
                print(f"Recording to {host.record_start(record, record_dry)}", file=err)
            except HostError as exc:
                print(f"voicegui live: cannot record: {exc}", file=err)
                return 2
        t0 = time.monotonic()
        while not stop.is_set():
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
            stop.wait(1.0)
            for kind, message in events:
                print(f"{kind}: {message}", file=err, flush=True)
            if any(kind in ("error", HOST_DIED) for kind, _ in events):
                break
            events.clear()
            snap = engine.snapshot()
            lat = snap.latency
            print(
                f"{time.monotonic() - t0:6.1f} s  latency {lat.end_to_end * 1e3:5.1f} ms  "
                f"RTF {snap.rtf:4.2f}  xruns {snap.xruns_in}/{snap.xruns_out}  "
                f"underruns {snap.underruns}  drops {snap.dropped_blocks}  "
                f"{'gated' if snap.gated else snap.status}",
                file=err,
                flush=True,
            )
        if record:
            try:
                recording = host.record_stop()
            except HostError as exc:
                print(f"voicegui live: the recording did not finish cleanly: {exc}", file=err)
        snap = engine.snapshot()
        summary = {
            "seconds": round(time.monotonic() - t0, 2),
            "voice": snap.voice,
            "provider": snap.provider,
            "priority": snap.priority,
            "blocks": snap.blocks,
            "xruns_in": snap.xruns_in,
            "xruns_out": snap.xruns_out,
            "underruns": snap.underruns,
            "dropped_blocks": snap.dropped_blocks,
            "voice_errors": snap.voice_errors,
            "latency": snap.latency.as_dict(),
            "compute": engine.metrics.compute_percentiles(),
            "status": snap.status if snap.running else (snap.status or "stopped"),
        }
        if recording is not None:
            summary["recording"] = recording
        if vmic.get("on"):
            summary["virtual_mic"] = {k: vmic.get(k) for k in ("what", "server", "measured")}
        print(json.dumps(summary, indent=2), file=out)
        return 0 if snap.running or stop.is_set() or seconds is not None else 1
    finally:
        signal.signal(signal.SIGINT, previous)
        if engine is not None:
            engine.stop("stopped")
        host.close()


def _send_to_apps(host: AudioHost, settings: Settings, err: TextIO) -> Settings | None:
    """``--virtual-mic`` where voicegui has no device of its own (Windows, macOS): play into a
    virtual cable instead, and say which device to pick in the other program. None: none is
    installed (the message says which to install)."""
    from voicegui.audio.cables import cable_for, missing_advice
    from voicegui.audio.virtual_mic import supported

    if not settings.audio.virtual_mic or supported():
        return settings
    _, devices, default_api = host.devices()
    api = settings.audio.output.hostapi or settings.audio.input.hostapi or default_api
    cable = cable_for(devices, api)
    if cable is None:
        print(f"voicegui live: {missing_advice(sys.platform, devices, api)}", file=err)
        return None
    print(cable.advice, file=err)
    return with_changes(settings, audio={"output": cable.output, "virtual_mic": False})


def _warn_about_input(host: AudioHost, settings: Settings, err: TextIO) -> None:
    """Say so when the input is not a microphone: a virtual cable's recording end, or one the
    voice plays into (it would feed back into itself)."""
    from voicegui.audio.cables import input_warning

    audio = settings.audio
    text = input_warning(host.devices()[1], audio.input, (audio.output, audio.monitor))
    if text:
        print(f"warning: {text}", file=err, flush=True)


def live_settings(base: Settings, input_dev: str | None, output_dev: str | None,
                  monitor: str | None, virtual_mic: bool = False) -> Settings:  # fmt: skip
    audio: dict = {"virtual_mic": True} if virtual_mic else {}
    for key, text in (("input", input_dev), ("output", output_dev), ("monitor", monitor)):
        ref = parse_device(text)
        if ref is not None:
            audio[key] = ref
    return with_changes(base, audio=audio) if audio else base
