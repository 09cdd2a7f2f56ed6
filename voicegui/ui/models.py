"""Model weights from the app: download (only when the user confirms), import from a folder, remove.

modelhub does the work (no Qt there); this runs it in a worker ``Task`` and turns its progress
callback ``(label, done, total)`` into signals for a progress bar. One model task at a time.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from voicegui import modelhub
from voicegui.ui.workers import Task

log = logging.getLogger(__name__)


def human_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def download_summary(name: str) -> str:
    """What a download of ``name`` fetches, how big, under which licence, and to where (HTML)."""
    e = modelhub.entry(name)
    sizes = [f.size for f in e.files]
    total = sum(sizes)
    rows = "".join(
        f"<li>{f.repo}/{f.filename}" + (f" ({human_size(f.size)})" if f.size else "") + "</li>"
        for f in e.files
    )
    if total and all(sizes):
        size = f"Download size: <b>{human_size(total)}</b>."
    elif total:
        size = f"Download size: at least <b>{human_size(total)}</b> (some sizes are not listed)."
    else:
        size = "Download size: not listed in the catalog; expect several hundred MB or more."
    folder = modelhub.model_dir(name)
    free = ""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    with contextlib.suppress(OSError):
        free = f" ({human_size(shutil.disk_usage(probe).free)} free there)"
    return (
        f"<p><b>{e.label}</b></p><p>{e.description}</p>"
        f"<p>Licence: {e.licence or 'not stated'}</p>"
        f"<p>{size}</p><p>Files, from the Hugging Face Hub:</p><ul>{rows}</ul>"
        f"<p>Saved to {folder}{free}.</p>"
    )


class ModelManager(QObject):
    """Runs one modelhub download/import at a time and reports it with signals (GUI thread)."""

    started = Signal(str, str)  # model name, what runs ("Downloading Seed-VC")
    progress = Signal(str, int, int)  # label, done, total (0 = unknown)
    finished = Signal(str, str, str)  # model name, outcome ('ok' | 'error' | 'cancelled'), text
    changed = Signal(str)  # a model was installed or removed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.task: Task | None = None
        self._kind = ""
        self._name = ""
        self._what = ""
        self._stopping: list[Task] = []  # cancelled downloads whose threads have not ended yet

    @property
    def busy(self) -> bool:
        return self.task is not None

    def label(self, name: str) -> str:
        try:
            return modelhub.entry(name).label.split(" (")[0]
        except modelhub.ModelError:
            return name

    def download(self, name: str) -> bool:
        """Download ``name`` in the background (the caller has asked the user first)."""
        return self._run(name, f"Downloading {self.label(name)}", "download", None)

    def import_from(self, name: str, folder: str | Path) -> bool:
        """Copy and verify ``name``'s files from ``folder`` in the background."""
        return self._run(name, f"Importing {self.label(name)}", "import", Path(folder))

    def _run(self, name: str, what: str, kind: str, folder: Path | None) -> bool:
        self._stopping = [t for t in self._stopping if t.join(0) is False]
        if self.task is not None or self._stopping:
            return False
        existed = modelhub.model_dir(name).exists()

        def work(task: Task) -> Path:
            try:
                if kind == "download":
                    return modelhub.download(name, progress=task.report)
                assert folder is not None
                return modelhub.import_dir(name, folder, progress=task.report)
            except BaseException:
                # a failed or cancelled import leaves no half-filled model folder behind; a
                # download keeps its partial files so that the next try resumes
                if kind == "import" and not existed and not modelhub.installed(name):
                    shutil.rmtree(modelhub.model_dir(name), ignore_errors=True)
                raise

        self._kind, self._name, self._what = kind, name, what
        self.task = Task(work, name=f"voicegui-model-{kind}", parent=self)
        self.task.progress.connect(self.progress)
        self.task.succeeded.connect(self._on_ok)
        self.task.failed.connect(self._on_failed)
        self.task.cancelled.connect(self._on_cancelled)
        log.info("%s (%s)", what, folder or "network")
        self.task.start()
        self.started.emit(name, what)
        return True

    def cancel(self) -> None:
        """Stop the running task. An import stops at its next megabyte. A download stops at its
        next chunk, which a stalled network may delay: the app stops waiting for it now."""
        task = self.task
        if task is None:
            return
        task.cancel()
        if self._kind == "download":
            for sig in (task.progress, task.succeeded, task.failed, task.cancelled):
                sig.disconnect()
            task.finished.connect(task.deleteLater)
            self._stopping.append(task)
            self.task = None
            self._report("cancelled", f"{self._what} cancelled (partial files are kept to resume)")

    def _finish(self, outcome: str, text: str) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.deleteLater()
        self._report(outcome, text)

    def _report(self, outcome: str, text: str) -> None:
        log.info("%s: %s %s", self._what, outcome, text)
        self.finished.emit(self._name, outcome, text)
        if outcome == "ok":
            self.changed.emit(self._name)

    def _on_ok(self, folder: object) -> None:
        if modelhub.installed(self._name):
            self._finish("ok", f"{self.label(self._name)} is installed in {folder}")
        else:  # modelhub returned but the files do not check out
            bad = [f"{k} {v}" for k, v in modelhub.status(self._name).items() if v != "ok"]
            self._finish("error", f"{self._what} left an incomplete install: {', '.join(bad)}")

    def _on_failed(self, message: str, exc: object) -> None:
        self._finish("error", message)

    def _on_cancelled(self) -> None:
        self._finish("cancelled", f"{self._what} cancelled")

    def remove(self, name: str) -> None:
        modelhub.remove(name)
        log.info("removed model %s", name)
        self.changed.emit(name)
