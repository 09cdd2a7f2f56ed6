"""Linux: use the system's PortAudio when there is one, else the copy inside the bundle.

The system library is built against the system's ALSA and JACK (or PipeWire's JACK layer), so it
sees the same devices as every other program; that is why the spec keeps libportaudio and libjack
out of the library search path (in _internal/portaudio/) and never bundles libasound. The copy in
the bundle is the fallback for a system without libportaudio2; its libjack is loaded only where
the system has none. VOICEGUI_PORTAUDIO=auto|system|bundled (default auto) forces a choice, for
tests and bug reports.
"""

import contextlib
import ctypes
import ctypes.util
import os
import sys


def _install() -> None:
    if not sys.platform.startswith("linux"):
        return
    folder = os.path.join(sys._MEIPASS, "portaudio")  # type: ignore[attr-defined]
    bundled = os.path.join(folder, "libportaudio.so.2")
    if not os.path.isfile(bundled):
        return
    mode = os.environ.get("VOICEGUI_PORTAUDIO", "auto").strip().lower()
    system_find = ctypes.util.find_library

    def preload_missing_deps() -> None:
        # libportaudio needs libjack.so.0 to load at all; take the bundled one only if the
        # system has none (a JACK client library must match the server the user runs).
        if mode != "bundled" and system_find("jack") is not None:
            return
        names = sorted(os.listdir(folder))
        # libjack's own dependencies first, then libjack itself
        order = [n for n in names if not n.startswith(("libjack", "libportaudio"))]
        order += [n for n in names if n.startswith("libjack")]
        for name in order:
            # on failure sounddevice reports the real problem when it loads PortAudio
            with contextlib.suppress(OSError):
                ctypes.CDLL(os.path.join(folder, name), mode=ctypes.RTLD_GLOBAL)

    def find_library(name: str) -> str | None:
        if name != "portaudio":
            return system_find(name)
        found = None if mode == "bundled" else system_find(name)
        if found is None and mode != "system":
            preload_missing_deps()
            return bundled
        return found

    ctypes.util.find_library = find_library


_install()
