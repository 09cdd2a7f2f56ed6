"""Numeric readouts beside the graph: latency (computed and measured), RTF, xruns, drops, errors,
and where the voice actually runs."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from voicegui.engine.metrics import MetricsSnapshot

ROWS = (
    (
        "latency",
        "Latency",
        "End-to-end latency computed from its parts (block, lookahead, SOLA, "
        "resampler, buffer, device, and with Send to apps the virtual microphone's measured "
        "share); measured when a loopback measurement ran.",
    ),
    ("algorithmic", "Algorithmic", "Block + lookahead + SOLA + resampler delay."),
    ("compute", "Compute", "Time the voice took for the last block, against the block time."),
    (
        "rtf",
        "RTF",
        "Real-time factor: compute time / block time. Above 1 the voice cannot keep "
        "up and blocks are dropped.",
    ),
    ("xruns", "Xruns", "Device over/underruns reported by the audio driver (input / output)."),
    ("underruns", "Underruns", "Times the output ran dry and silence was played."),
    ("drops", "Dropped blocks", "Input blocks skipped because the voice fell behind."),
    ("errors", "Voice errors", "Blocks the voice failed on (dry or silent audio was played)."),
    ("provider", "Runs on", "The execution provider / device that is actually active."),
    (
        "priority",
        "Priority",
        "Whether the OS gave the audio engine's block thread real-time priority, and why not. "
        "Without it, busy programs can delay the voice into crackles (Linux: join the 'audio' "
        "group with an rtprio limit, or install rtkit).",
    ),
    ("state", "State", "Engine state."),
)


class Readouts(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 0, 4, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        self.values: dict[str, QLabel] = {}
        half = (len(ROWS) + 1) // 2  # two label/value column pairs keep the graph tall
        for i, (key, title, tip) in enumerate(ROWS):
            label = QLabel(title)
            value = QLabel("–")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setAccessibleName(title)
            value.setAccessibleDescription(tip)
            for w in (label, value):
                w.setToolTip(tip)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            row, col = i % half, (i // half) * 2
            grid.addWidget(label, row, col)
            grid.addWidget(value, row, col + 1)
            self.values[key] = value
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.show_stopped("stopped")

    def _set(self, key: str, text: str) -> None:
        label = self.values[key]
        if label.text() != text:  # avoid relayouts at 30 Hz when nothing changed
            label.setText(text)

    def show_snapshot(self, s: MetricsSnapshot) -> None:
        lat = s.latency
        text = f"{lat.end_to_end * 1e3:.1f} ms"
        if s.measured_latency is not None:
            text += f" (measured {s.measured_latency * 1e3:.1f})"
        self._set("latency", text)
        self._set("algorithmic", f"{lat.algorithmic * 1e3:.1f} ms")
        self._set("compute", f"{s.compute_ms:.2f} / {lat.block * 1e3:.1f} ms")
        self._set("rtf", f"{s.rtf:.2f}")
        self._set("xruns", f"{s.xruns_in} in / {s.xruns_out} out")
        self._set("underruns", str(s.underruns))
        self._set("drops", str(s.dropped_blocks))
        self._set("errors", str(s.voice_errors))
        self._set("provider", f"{s.provider} ({s.voice})" if s.voice else s.provider)
        if s.priority:
            # "real-time priority: yes (SCHED_FIFO 55)" -> "real-time: yes (SCHED_FIFO 55)"
            self._set("priority", s.priority.replace("real-time priority", "real-time"))
        self._set(
            "state",
            ("gated (silence)" if s.gated else "running") if s.running else s.status or "stopped",
        )

    def show_stopped(self, reason: str) -> None:
        self._set("state", reason)
