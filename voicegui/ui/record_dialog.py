"""Record a reference clip: countdown, record a few seconds, listen, use it.

The recording itself is voicegui.audio.recorder (no Qt); this dialog only drives it from a timer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from voicegui.audio.clips import RecorderError
from voicegui.engine.client import AudioHost, RemotePlayer, RemoteRecorder
from voicegui.settings import AudioSettings

log = logging.getLogger(__name__)


class RecordDialog(QDialog):
    recorded = Signal(str)  # path of the saved recording, when the user chooses to use it

    def __init__(
        self,
        audio: AudioSettings,
        host: AudioHost,
        countdown: int = 3,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record a reference clip")
        self.audio = audio
        self.host = host  # records and plays in the audio host process
        self.countdown = countdown
        self.recorder: RemoteRecorder | None = None
        self.player: RemotePlayer | None = None
        self.path: Path | None = None
        self._count = 0
        self._last: tuple | None = None  # (audio, rate) of the newest recording

        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(2.0, 30.0)
        self.seconds.setValue(6.0)
        self.seconds.setSuffix(" s")
        self.seconds.setAccessibleName("Recording length")
        self.info = QLabel(
            f"Microphone: {audio.input}\nSpeak a few sentences in the voice you want to sound like."
        )
        self.info.setWordWrap(True)
        self.state = QLabel("Ready.")
        self.state.setAccessibleName("Recording state")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Recording progress")
        self.record = QPushButton("&Record")
        self.record.setAccessibleName("Start recording")
        self.play = QPushButton("&Play")
        self.play.setAccessibleName("Play the recording")
        self.play.setEnabled(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.use = self.buttons.addButton(
            "&Use as reference", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.use.setEnabled(False)

        form = QFormLayout()
        form.addRow("Length", self.seconds)
        row = QHBoxLayout()
        row.addWidget(self.record)
        row.addWidget(self.play)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.info)
        lay.addLayout(form)
        lay.addLayout(row)
        lay.addWidget(self.state)
        lay.addWidget(self.progress)
        lay.addWidget(self.buttons)

        self._tick = QTimer(self)
        self._tick.setInterval(33)
        self._tick.timeout.connect(self._poll)
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._count_down)
        self.record.clicked.connect(self.start)
        self.play.clicked.connect(self.play_back)
        self.buttons.accepted.connect(self._use)
        self.buttons.rejected.connect(self.reject)
        self.finished.connect(self._cleanup)

    # ---- recording ---------------------------------------------------------------------------
    def start(self) -> None:
        self._stop_streams()
        self.record.setEnabled(False)
        self.play.setEnabled(False)
        self.use.setEnabled(False)
        self._count = self.countdown
        if self._count > 0:
            self.state.setText(f"Recording starts in {self._count} …")
            self._countdown.start()
        else:
            self._begin()

    def _count_down(self) -> None:
        self._count -= 1
        if self._count > 0:
            self.state.setText(f"Recording starts in {self._count} …")
            return
        self._countdown.stop()
        self._begin()

    def _begin(self) -> None:
        a = self.audio
        try:
            self.recorder = RemoteRecorder(
                self.host, a.input, self.seconds.value(), a.sample_rate, a.input_channel
            ).start()
        except RecorderError as exc:
            self._fail(str(exc))
            return
        self.state.setText("Recording … speak now.")
        self._tick.start()

    def _poll(self) -> None:
        if self.recorder is not None:
            self.progress.setValue(round(self.recorder.progress * 1000))
            if self.recorder.finished:
                self._finish_recording()
        elif self.player is not None:
            self.progress.setValue(round(self.player.progress * 1000))
            if self.player.finished:
                self.player.stop()
                self.player = None
                self._tick.stop()
                self.state.setText(f"Saved as {self.path.name if self.path else ''}.")
                self.record.setEnabled(True)
                self.play.setEnabled(True)

    def _finish_recording(self) -> None:
        rec, self.recorder = self.recorder, None
        self._tick.stop()
        assert rec is not None
        rec.stop()
        self._last = (rec.audio, rec.sample_rate)
        try:
            self.path = rec.save()
        except (RecorderError, OSError) as exc:
            self._fail(f"Could not save the recording: {exc}")
            return
        log.info(
            "reference recorded: %s (%.1f s, peak %.3f)",
            self.path,
            rec.frames / rec.sample_rate,
            rec.peak,
        )
        self.record.setText("&Record again")
        self.record.setEnabled(True)
        self.play.setEnabled(True)
        if rec.silent:
            self.state.setText(
                "The recording is silent: check that the right microphone is "
                "chosen and not muted, then record again."
            )
            self.use.setEnabled(False)
        else:
            self.state.setText(f"Saved as {self.path.name}. Listen to it, then use it.")
            self.use.setEnabled(True)

    def play_back(self) -> None:
        if self._last is None:
            return
        data, sr = self._last
        self._stop_streams()
        try:
            self.player = RemotePlayer(self.host, data, sr, self.audio.output).start()
        except RecorderError as exc:
            self._fail(str(exc))
            return
        self.state.setText("Playing …")
        self.record.setEnabled(False)
        self.play.setEnabled(False)
        self._tick.start()

    def _fail(self, message: str) -> None:
        self._tick.stop()
        self._countdown.stop()
        self.state.setText(message)
        self.record.setEnabled(True)

    def _use(self) -> None:
        if self.path is not None:
            self.recorded.emit(str(self.path))
        self.accept()

    def _stop_streams(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        if self.player is not None:
            self.player.stop()
            self.player = None

    def _cleanup(self) -> None:
        self._tick.stop()
        self._countdown.stop()
        self._stop_streams()
