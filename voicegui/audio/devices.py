"""Host APIs and devices, matched by (host API name, device name), never by index.

Device indices change whenever a device is plugged in; names survive. A device that cannot be
found raises DeviceNotFound with the list of what exists, so a preset saved on one machine fails
with a message a user can act on.
"""

from __future__ import annotations

from typing import Any

from voicegui.audio.backend import sounddevice
from voicegui.audio.device_info import COMMON_RATES, PREFERRED_HOSTAPIS, DeviceInfo, Kind
from voicegui.settings import AudioSettings, DeviceRef


class DeviceNotFound(LookupError):
    pass


class SampleRateError(ValueError):
    pass


def hostapi_names() -> list[str]:
    return [h["name"] for h in sounddevice().query_hostapis()]


def list_devices(kind: Kind | None = None, hostapi: str | None = None) -> list[DeviceInfo]:
    sd = sounddevice()
    apis = sd.query_hostapis()
    out = []
    for d in sd.query_devices():
        info = DeviceInfo(
            index=d["index"],
            name=d["name"],
            hostapi=apis[d["hostapi"]]["name"],
            max_input_channels=d["max_input_channels"],
            max_output_channels=d["max_output_channels"],
            default_samplerate=d["default_samplerate"],
            default_low_input_latency=d["default_low_input_latency"],
            default_low_output_latency=d["default_low_output_latency"],
            default_high_input_latency=d["default_high_input_latency"],
            default_high_output_latency=d["default_high_output_latency"],
        )
        if kind and info.channels(kind) <= 0:
            continue
        if hostapi and info.hostapi != hostapi:
            continue
        out.append(info)
    return out


def default_device(kind: Kind, hostapi: str | None = None) -> DeviceInfo:
    """The host API's default device (the system default when no host API is named)."""
    sd = sounddevice()
    apis = sd.query_hostapis()
    if hostapi:
        matches = [h for h in apis if h["name"] == hostapi]
        if not matches:
            raise DeviceNotFound(
                f"host API '{hostapi}' is not available; available: {', '.join(hostapi_names())}"
            )
        index = matches[0][f"default_{kind}_device"]
    else:
        # no host API chosen: a preferred one's default device where it has one (Windows:
        # WASAPI, not PortAudio's default MME, whose buffering adds tens of milliseconds)
        preferred = [
            h[f"default_{kind}_device"]
            for name in PREFERRED_HOSTAPIS
            for h in apis
            if h["name"] == name and h[f"default_{kind}_device"] >= 0
        ]
        index = preferred[0] if preferred else sd.default.device[0 if kind == "input" else 1]
        if index is None or index < 0:
            index = next(
                (h[f"default_{kind}_device"] for h in apis if h[f"default_{kind}_device"] >= 0), -1
            )
    for info in list_devices(kind):
        if info.index == index:
            return info
    candidates = list_devices(kind, hostapi)
    if candidates:
        return candidates[0]
    raise DeviceNotFound(f"no {kind} device is available" + (f" on {hostapi}" if hostapi else ""))


def find_device(ref: DeviceRef, kind: Kind) -> DeviceInfo:
    """Resolve a (host API, name) reference; an empty name means the default device."""
    if not ref.name:
        return default_device(kind, ref.hostapi or None)
    candidates = list_devices(kind)
    exact = [
        d
        for d in candidates
        if d.name == ref.name and (not ref.hostapi or d.hostapi == ref.hostapi)
    ]
    if exact:
        return exact[0]
    # Some host APIs decorate names (", ALSA" suffixes, "(2- " prefixes): accept a unique substring.
    loose = [
        d
        for d in candidates
        if ref.name.lower() in d.name.lower() and (not ref.hostapi or d.hostapi == ref.hostapi)
    ]
    if len(loose) == 1:
        return loose[0]
    listing = "\n".join(f"  {d.hostapi}: {d.name}" for d in candidates) or "  (none)"
    raise DeviceNotFound(
        f"{kind} device '{ref.name}'"
        + (f" on {ref.hostapi}" if ref.hostapi else "")
        + f" was not found. Available {kind} devices:\n{listing}"
    )


def extra_settings(device: DeviceInfo, audio: AudioSettings) -> Any:
    """Host-API specific stream settings (WASAPI exclusive, CoreAudio), or None."""
    sd = sounddevice()
    if "WASAPI" in device.hostapi and audio.wasapi_exclusive:
        return sd.WasapiSettings(exclusive=True)
    if device.hostapi == "Core Audio" and hasattr(sd, "CoreAudioSettings"):
        # let the app set the hardware rate instead of converting inside CoreAudio
        return sd.CoreAudioSettings(change_device_parameters=True)
    return None


def _check(kind: Kind, device: DeviceInfo, rate: int, channels: int, extra: Any) -> str | None:
    sd = sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(
            device=device.index,
            samplerate=rate,
            channels=channels,
            dtype="float32",
            extra_settings=extra,
        )
    except Exception as exc:  # PortAudioError or ValueError, both mean "refused"
        return str(exc)
    return None


def choose_sample_rate(
    devices: list[tuple[Kind, DeviceInfo]], wanted: int, audio: AudioSettings, fallback: bool = True
) -> tuple[int, str | None]:
    """The requested rate if every device takes it, else a rate they all take.

    Returns (rate, note); note explains a fallback. Raises SampleRateError when no common rate
    exists or fallback is off.
    """

    def refusals(rate: int) -> list[str]:
        out = []
        for kind, dev in devices:
            err = _check(kind, dev, rate, 1, extra_settings(dev, audio))
            if err:
                out.append(f"{dev.name} ({kind}): {err}")
        return out

    first = refusals(wanted)
    if not first:
        return wanted, None
    if not fallback:
        raise SampleRateError(f"{wanted} Hz is refused: " + "; ".join(first))
    tried = [int(d.default_samplerate) for _, d in devices] + list(COMMON_RATES)
    for rate in dict.fromkeys(tried):
        if rate != wanted and not refusals(rate):
            return rate, f"{wanted} Hz is refused by {first[0].split(' (')[0]}; using {rate} Hz"
    raise SampleRateError("no sample rate works for all chosen devices: " + "; ".join(first))


def describe(kind: Kind | None = None) -> str:
    """Human-readable listing for `voicegui devices`."""
    sd = sounddevice()
    lines = []
    for api in sd.query_hostapis():
        lines.append(f"{api['name']}:")
        devs = [d for d in list_devices(kind) if d.hostapi == api["name"]]
        if not devs:
            lines.append("  (no devices)")
        for d in devs:
            mark = []
            if d.index == api["default_input_device"]:
                mark.append("default in")
            if d.index == api["default_output_device"]:
                mark.append("default out")
            lines.append(
                f"  {d.name!r}  in {d.max_input_channels} / out {d.max_output_channels} ch, "
                f"{d.default_samplerate:g} Hz, latency low {d.default_low_input_latency * 1e3:.1f}/"
                f"{d.default_low_output_latency * 1e3:.1f} ms, high "
                f"{d.default_high_input_latency * 1e3:.1f}/"
                f"{d.default_high_output_latency * 1e3:.1f} ms"
                + (f"  [{', '.join(mark)}]" if mark else "")
            )
    return "\n".join(lines)


def as_json(kind: Kind | None = None) -> list[dict]:
    from dataclasses import asdict

    return [asdict(d) for d in list_devices(kind)]


def missing_devices(audio: AudioSettings) -> list[str]:
    """Which named devices of these settings are not present now (empty: all found)."""
    missing = []
    for label, ref, kind in (
        ("input", audio.input, "input"),
        ("output", audio.output, "output"),
        ("monitor", audio.monitor, "output"),
    ):
        if not ref.name:
            continue
        try:
            find_device(ref, kind)  # type: ignore[arg-type]
        except DeviceNotFound:
            missing.append(f"{label} '{ref.name}' ({ref.hostapi or 'any host API'})")
    return missing
