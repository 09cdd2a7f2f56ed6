"""Import the installed neural voices' libraries in the audio host before anything plays.

Importing torch (and transformers for Seed-VC) holds the interpreter lock in C for up to 150 ms at
a time: extension start-up and operator registration, where Python cannot hand the lock over.
Done while the built-in voice plays (the first switch to a neural voice), the block thread waits
through each of those and the playing voice drops blocks. Done when the audio host starts, on a
thread of its own, it leaves a switch with only the voice's own build; the engine's first start
waits for it (see ``Preload.wait``), which it only ever does in the first seconds after start-up.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

log = logging.getLogger(__name__)

# what building each voice imports that holds the lock longest (the voicegui modules are Python,
# which hands the lock over every few instructions, but they are imported too: they are cheap)
LIBRARIES = {
    "rvc": ("torch", "voicegui.voices.rvc.voice", "voicegui.voices.rvc.pipeline"),
    "seedvc": (
        "torch",
        "transformers.models.wav2vec2.modeling_wav2vec2",
        "voicegui.voices.seedvc.voice",
    ),
}
WAIT_AT_MOST = 10.0  # s an engine start waits for it at most (a cold disk cache)


def installed_neural_voices() -> list[str]:
    """The neural voices whose weights are installed here (only they are worth importing for)."""
    from voicegui import modelhub

    return [name for name in LIBRARIES if modelhub.installed(name)]


class Preload:
    """The import, on a thread of its own at ordinary priority with a boost (see
    ``favour_ordinary_thread``; threads the libraries start are ordinary). Which voices are
    installed is read there too, so that the host's start-up does not wait for the disk."""

    def __init__(self) -> None:
        self.voices: list[str] = []
        self.modules: list[str] = []
        self.seconds: float | None = None
        self.failed: dict[str, str] = {}
        self.decided = threading.Event()  # ``voices`` and ``modules`` are known
        self._thread = threading.Thread(target=self._run, name="voicegui-preload", daemon=True)

    def start(self) -> Preload:
        self._thread.start()
        return self

    def _run(self) -> None:
        from voicegui.engine.priority import favour_ordinary_thread, normal_thread

        normal_thread()
        favour_ordinary_thread()
        try:
            self.voices = installed_neural_voices()
        except Exception:  # a broken models folder is reported where models are shown
            log.exception("listing the installed voices failed")
        self.modules = list(dict.fromkeys(m for v in self.voices for m in LIBRARIES[v]))
        self.decided.set()
        if not self.voices:
            return
        t0 = time.perf_counter()
        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # the voice's own build says so when it is chosen
                self.failed[name] = f"{type(exc).__name__}: {exc}"
        from voicegui.voices.compute_devices import probe_devices

        probe_devices()  # CUDA's start-up holds the lock too; the result is kept
        self.seconds = time.perf_counter() - t0
        log.info(
            "neural libraries for %s imported in %.1f s%s", ", ".join(self.voices), self.seconds,
            f" (not: {self.failed})" if self.failed else "",
        )  # fmt: skip

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float = WAIT_AT_MOST) -> bool:
        """Block until the import is over (True) or ``timeout`` passed."""
        self._thread.join(timeout)
        return self.done
