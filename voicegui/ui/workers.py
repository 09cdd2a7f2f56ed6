"""Background work for the GUI: a Python thread whose results arrive as queued Qt signals.

The GUI thread never waits for a task. The worker only emits private signals that are connected
to the task's own slots with a queued connection, so every public signal (``progress``,
``succeeded``, ``failed``, ``finished``) is emitted in the GUI thread whatever its receiver is
(a plain Python callable connected to a signal emitted from another thread would otherwise run in
that thread). Cancelling is cooperative: the task's ``report`` (handed to the work as a progress
callback) raises ``Cancelled`` at the next progress report; a task that never reports runs to its
end and its result is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.05  # s between progress signals for the same label (a GB hashes in MB steps)


class Cancelled(Exception):
    """Raised inside the work by ``Task.report`` once the task was cancelled."""


class Task(QObject):
    """Run ``fn(task)`` once in a daemon thread; ``fn`` may call ``task.report(label, done,
    total)``. Exactly one of ``succeeded(result)``, ``failed(message, exception)`` or
    ``cancelled()`` follows, then ``finished()``, all in the GUI thread.
    """

    progress = Signal(str, int, int)  # label, done, total (0 = unknown)
    succeeded = Signal(object)
    failed = Signal(str, object)  # user-facing message, the exception
    cancelled = Signal()
    finished = Signal()
    _progress = Signal(str, int, int)  # from the worker thread
    _done = Signal(str, object)  # ('ok' | 'error' | 'cancelled', result or exception)

    def __init__(
        self, fn: Callable[[Task], Any], name: str = "voicegui-task", parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.fn = fn
        self.name = name
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_label = ""
        self._last_emit = 0.0
        self.done = False
        self.outcome = ""  # 'ok', 'error' or 'cancelled' once done
        self.result: Any = None
        self.error: BaseException | None = None
        queued = Qt.ConnectionType.QueuedConnection
        self._progress.connect(self._on_progress, queued)
        self._done.connect(self._on_done, queued)

    # ---- GUI thread --------------------------------------------------------------------------
    def start(self) -> Task:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self.done

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (tests and shutdown only); True when it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @Slot(str, int, int)
    def _on_progress(self, label: str, done: int, total: int) -> None:
        if not self.done and not self._cancel.is_set():
            self.progress.emit(label, done, total)

    @Slot(str, object)
    def _on_done(self, outcome: str, value: object) -> None:
        self.done, self.outcome = True, outcome
        if outcome == "ok":
            self.result = value
            self.succeeded.emit(value)
        elif outcome == "cancelled":
            self.cancelled.emit()
        else:
            assert isinstance(value, BaseException)
            self.error = value
            self.failed.emit(describe_error(value), value)
        self.finished.emit()

    # ---- worker thread -----------------------------------------------------------------------
    def report(self, label: str, done: int, total: int) -> None:
        """Progress callback for the work (modelhub's ``progress=``); raises Cancelled."""
        if self._cancel.is_set():
            raise Cancelled()
        now = time.monotonic()
        final = total > 0 and done >= total
        if label == self._last_label and not final and now - self._last_emit < PROGRESS_INTERVAL:
            return
        self._last_label, self._last_emit = label, now
        self._emit(self._progress, label, int(done), int(total))

    def _run(self) -> None:
        try:
            result = self.fn(self)
        except Cancelled:
            outcome, value = "cancelled", None
        except BaseException as exc:  # noqa: BLE001 (everything reaches the GUI as a message)
            if self._cancel.is_set():
                outcome, value = "cancelled", None
            else:
                log.warning("%s failed", self.name, exc_info=True)
                outcome, value = "error", exc
        else:
            outcome, value = "ok", result
        self._emit(self._done, outcome, value)

    def _emit(self, signal, *args) -> None:
        # RuntimeError: the task object is gone (window closed), nobody is listening
        with contextlib.suppress(RuntimeError):
            signal.emit(*args)


def describe_error(exc: BaseException) -> str:
    """The message a user reads: our own errors speak for themselves, others get their type."""
    text = str(exc).strip()
    own = type(exc).__name__ in (
        "ModelError",
        "VoiceError",
        "CheckpointError",
        "AudioFileError",
        "LibraryError",
    )
    if own and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
