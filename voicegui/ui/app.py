"""QApplication setup: logging to the log dir, the exception dialog, state restore, smoke mode.

Startup imports Qt, pyqtgraph, numpy and sounddevice only; torch and onnxruntime are imported
later, and only if a neural voice is chosen.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from voicegui import __version__
from voicegui.logs import setup_logging
from voicegui.presets import AppState, PresetStore
from voicegui.settings import AudioSettings, DeviceRef, Settings, SettingsError

log = logging.getLogger("voicegui")
MAX_ERROR_DIALOGS = 3  # an exception storm must not bury the window under dialogs


# ---- unhandled exceptions --------------------------------------------------------------------
class ExceptionDialogs:
    """sys.excepthook: log the traceback, show a non-modal dialog naming the log, keep running."""

    def __init__(self, log_path: Path, parent: QWidget | None = None) -> None:
        self.log_path = log_path
        self.parent = parent
        self.dialogs: list[QMessageBox] = []
        self.count = 0
        self._previous = sys.excepthook

    def install(self) -> ExceptionDialogs:
        sys.excepthook = self
        return self

    def uninstall(self) -> None:
        if sys.excepthook is self:
            sys.excepthook = self._previous

    def __call__(self, etype, value, tb) -> None:
        if issubclass(etype, KeyboardInterrupt):
            app = QApplication.instance()
            if app is not None:
                app.quit()
            return
        self.count += 1
        log.error("unhandled exception", exc_info=(etype, value, tb))
        try:
            self._show(etype, value, tb)
        except Exception:  # the hook itself must never raise
            log.exception("could not show the error dialog")

    def _show(self, etype, value, tb) -> None:
        if QApplication.instance() is None:
            return
        if len(self.dialogs) >= MAX_ERROR_DIALOGS:
            return
        box = QMessageBox(self.parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("voicegui: unexpected error")
        box.setText(f"Something went wrong: {etype.__name__}: {value}")
        box.setInformativeText(
            f"The app keeps running. Details are in the log file:\n{self.log_path}"
        )
        box.setDetailedText("".join(traceback.format_exception(etype, value, tb)))
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        box.setModal(False)
        box.finished.connect(lambda _=0, b=box: self._closed(b))
        box.show()
        self.dialogs.append(box)

    def _closed(self, box: QMessageBox) -> None:
        if box in self.dialogs:
            self.dialogs.remove(box)
        box.deleteLater()


# ---- application -----------------------------------------------------------------------------
def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        # HiDPI: Qt 6 scales by default; pass fractional factors through instead of rounding
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("voicegui")
    app.setApplicationDisplayName("voicegui")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("voicegui")
    app.setDesktopFileName("voicegui")
    if sys.platform.startswith("linux"):
        # Fusion follows the platform's light/dark palette; native styles elsewhere do too
        app.setStyle("Fusion")
    from voicegui.ui.icon import app_icon

    app.setWindowIcon(app_icon())
    return app


def initial_settings(
    data: dict, missing_devices: Callable[[AudioSettings], list[str]] | None = None
) -> tuple[Settings, list[str]]:
    """The settings saved last time, or defaults; notes say what could not be restored."""
    notes: list[str] = []
    raw = data.get("settings")
    settings = Settings()
    if isinstance(raw, dict):
        try:
            settings = Settings.from_dict(raw)
        except SettingsError as exc:
            notes.append(f"The saved settings could not be restored ({exc}); using defaults.")
    from dataclasses import replace

    try:
        a = settings.audio
        named = a.input.name or a.output.name or a.monitor.name
        missing = missing_devices(a) if missing_devices is not None and named else []
    except Exception as exc:  # PortAudio unavailable: the window still opens
        missing = []
        notes.append(f"Audio devices cannot be listed: {exc}")
    if missing:
        a = settings.audio
        changes = {}
        for label in ("input", "output", "monitor"):
            if any(m.startswith(label + " ") for m in missing):
                ref: DeviceRef = getattr(a, label)
                changes[label] = (
                    DeviceRef(hostapi=ref.hostapi) if label != "monitor" else DeviceRef()
                )
        settings = replace(settings, audio=replace(a, **changes))
        notes.append(
            "Not found now: " + "; ".join(missing) + ". Using the default device "
            "instead; plug it in and press Refresh, or choose another."
        )
    return settings, notes


def create_window(state: AppState | None = None, host=None):
    """Controller + main window with the last settings, preset selection and geometry."""
    from voicegui.engine.client import AudioHost
    from voicegui.ui.controller import Controller
    from voicegui.ui.main_window import MainWindow

    state = state or AppState()
    data = state.load()
    host = (host or AudioHost()).start()  # the audio lives in its own process
    settings, notes = initial_settings(data, host.missing_devices)
    controller = Controller(settings, host=host)
    window = MainWindow(controller, PresetStore(), state)
    window.restore_state(data)
    for note in notes:
        window.show_notice("warning", note, "startup")
    controller.open_meter()
    return window


def _process_age() -> float | None:
    """Seconds since this process started (Linux), for an honest cold-start figure."""
    if not sys.platform.startswith("linux"):
        return None  # (Wine shows Windows programs Linux's /proc, but os.sysconf is Unix-only)
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def rss_mb() -> float | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def save_screenshot(window: QWidget, path: str | Path) -> Path:
    """Grab the window as the window system shows it (falls back to rendering the widget)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixmap = None
    screen = window.screen()
    if screen is not None and QGuiApplication.platformName() not in ("offscreen", "minimal"):
        pixmap = screen.grabWindow(window.winId())
    if pixmap is None or pixmap.isNull():
        pixmap = window.grab()
    if not pixmap.save(str(path)):
        raise OSError(f"could not write {path}")
    return path


def run_app(smoke_seconds: float | None = None, argv: list[str] | None = None) -> int:
    t_import = time.perf_counter()
    log_path = setup_logging()
    log.info(
        "voicegui %s starting (Python %s, Qt platform %s)",
        __version__,
        sys.version.split()[0],
        os.environ.get("QT_QPA_PLATFORM", "default"),
    )
    app = create_application(argv)
    window = create_window()
    hooks = ExceptionDialogs(log_path, window).install()
    window.show()

    def shown() -> None:
        age = _process_age()
        elapsed = age if age is not None else time.perf_counter() - t_import
        torch_loaded = "torch" in sys.modules
        line = (
            f"voicegui {__version__}: window shown {elapsed:.2f} s after process start "
            f"(Qt platform {QGuiApplication.platformName()}); "
            f"torch imported: {'yes' if torch_loaded else 'no'}"
        )
        log.info(line)
        if smoke_seconds is not None:
            print(line, flush=True)

    QTimer.singleShot(0, shown)
    # let Ctrl+C in a terminal close the window cleanly (Python only sees signals between events)
    signal.signal(signal.SIGINT, lambda *_: window.close())
    heartbeat = QTimer()
    heartbeat.start(250)
    heartbeat.timeout.connect(lambda: None)

    if smoke_seconds is not None:
        ms = max(500, int(smoke_seconds * 1000))
        if os.environ.get("VOICEGUI_SMOKE_START") == "1":
            QTimer.singleShot(300, window.controller.start)
        shot = os.environ.get("VOICEGUI_SCREENSHOT")
        if shot:

            def grab() -> None:
                try:
                    out = save_screenshot(window, shot)
                    print(f"voicegui smoke: screenshot saved to {out}", flush=True)
                except Exception as exc:
                    print(f"voicegui smoke: screenshot failed: {exc}", flush=True)

            QTimer.singleShot(max(300, ms - 700), grab)
        QTimer.singleShot(ms, window.close)

    rc = app.exec()
    hooks.uninstall()
    # delete the window while Qt is still alive: interpreter teardown order is not Qt's
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    if smoke_seconds is not None:
        rss = rss_mb()
        print(
            f"voicegui smoke: ok, ran {smoke_seconds:g} s; RSS "
            f"{rss:.0f} MB; 'torch' in sys.modules: {'torch' in sys.modules}"
            if rss is not None
            else "voicegui smoke: ok",
            flush=True,
        )
    log.info("voicegui exiting (%d)", rc)
    return int(rc)
