"""Live graph of the last 30 s: compute per block vs the block time, RTF, levels, latency, events.

Updated from the controller's ~30 Hz metrics signal; it only copies the engine's preallocated
history (``Metrics.history``) and hands arrays to pyqtgraph, with clip-to-view and peak
downsampling so a 5 ms block size (6000 points per curve) stays cheap.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QGraphicsView, QLabel, QSizePolicy, QVBoxLayout, QWidget

from voicegui.engine.metrics import HISTORY, LatencyBudget, Metrics, MetricsSnapshot

WINDOW_S = 30.0
LEVEL_FLOOR_DB = -90.0
PARTS = (
    "block",
    "lookahead",
    "sola",
    "resampler",
    "denoise",
    "network",
    "buffer",
    "device_in",
    "device_out",
    "virtual_mic",
)
PART_LABELS = {
    "block": "block",
    "lookahead": "lookahead",
    "sola": "SOLA",
    "resampler": "resampler",
    "denoise": "denoise",
    "network": "network",
    "buffer": "buffer",
    "device_in": "device in",
    "device_out": "device out",
    "virtual_mic": "virtual mic",
}


def series_color(i: int, n: int = 9) -> QColor:
    # mid-saturation hues read on both light and dark backgrounds
    return pg.intColor(i, hues=n, values=1, maxValue=220, minValue=150, sat=200)


def part_color(part: str) -> QColor:
    return series_color(PARTS.index(part), len(PARTS))


class LatencyBar(QWidget):
    """One horizontal bar split into the latency parts, each labelled when it fits."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.budget = LatencyBudget()
        self.measured: float | None = None
        self.setMinimumHeight(30)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Latency breakdown")

    def set_budget(self, budget: LatencyBudget, measured: float | None) -> None:
        if budget == self.budget and measured == self.measured:
            return
        self.budget, self.measured = budget, measured
        parts = [f"{PART_LABELS[p]} {getattr(budget, p) * 1e3:.1f} ms" for p in PARTS]
        text = "End-to-end latency (computed) = " + " + ".join(parts)
        if measured is not None:
            text += f"\nMeasured through a loopback: {measured * 1e3:.1f} ms"
        self.setToolTip(text)
        self.setAccessibleDescription(text)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        pal = self.palette()
        p.setPen(pal.color(QPalette.ColorRole.Mid))
        p.setBrush(pal.color(QPalette.ColorRole.Base))
        p.drawRect(rect)
        total = self.budget.end_to_end
        if total <= 0:
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "latency appears when running")
            return
        x = rect.left()
        fm = p.fontMetrics()
        for part in PARTS:
            w = getattr(self.budget, part) / total * rect.width()
            if w <= 0:
                continue
            seg = QRectF(x, rect.top(), w, rect.height())
            p.fillRect(seg, part_color(part))
            label = f"{PART_LABELS[part]} {getattr(self.budget, part) * 1e3:.0f}"
            if fm.horizontalAdvance(label) + 6 < w:
                p.setPen(QColor(0, 0, 0))  # text on a coloured segment: always dark on mid tones
                p.drawText(seg, Qt.AlignmentFlag.AlignCenter, label)
            x += w
        p.end()


class PlotView(pg.GraphicsLayoutWidget):
    """pyqtgraph's layout view, painted by Qt's own C++ paintEvent.

    pyqtgraph overrides paintEvent in Python only to emit prepareForPaint first. A Python override
    makes the whole scene render (C++ rasterisation included) run while holding the GIL, and the
    sounddevice callbacks need the GIL too: at 30 fps that alone caused xruns on a 256-frame JACK
    period. Rebinding Qt's method makes PySide call the C++ implementation directly (the GIL is then
    only taken inside the Python items' paint methods); GraphPanel emits prepareForPaint itself
    after each data update, and on resize below.
    """

    paintEvent = QGraphicsView.paintEvent  # noqa: N815 (Qt naming)

    def resizeEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(ev)
        self.scene().prepareForPaint()

    def showEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(ev)
        self.scene().prepareForPaint()


def _fit(current: tuple[float, float], lo: float, hi: float) -> tuple[float, float] | None:
    """A new y range when the data left the current one or fills too little of it, else None.

    Keeping the range steady avoids re-laying out the axis (Python work) at every frame.
    """
    c_lo, c_hi = current
    span = max(hi - lo, 1e-6)
    if lo >= c_lo and hi <= c_hi and (hi - lo) > 0.4 * (c_hi - c_lo):
        return None
    return (lo - 0.1 * span if lo < 0 else max(0.0, lo - 0.1 * span)), hi + 0.15 * span


class GraphPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Live performance graph")
        self.view = PlotView()
        self.view.setMinimumHeight(320)
        self.view.ci.setSpacing(2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view, 1)
        self.latency_bar = LatencyBar()
        lay.addWidget(self.latency_bar)
        self.legend = QLabel()  # names and sizes of the bar's segments, coloured like them
        self.legend.setWordWrap(True)
        self.legend.setAccessibleName("Latency parts")
        lay.addWidget(self.legend)

        self.plots: dict[str, pg.PlotItem] = {}
        titles = {
            "compute": "Compute per block (ms)",
            "rtf": "Real-time factor",
            "levels": "Level (dBFS)",
            "latency": "Latency (ms)",
        }
        first = None
        for row, (key, title) in enumerate(titles.items()):
            plot = self.view.addPlot(row=row, col=0)
            plot.setTitle(title, size="9pt")
            plot.showGrid(x=False, y=False)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setXRange(-WINDOW_S, 0, padding=0)
            plot.enableAutoRange(axis="x", enable=False)
            plot.enableAutoRange(axis="y", enable=False)  # ranges follow the data in _fit
            plot.getAxis("left").setWidth(44)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            if key != "latency":
                plot.getAxis("bottom").setStyle(showValues=False)
            self.plots[key] = plot
        self.plots["latency"].setLabel("bottom", "seconds ago")
        self.plots["rtf"].setYRange(0, 1.2, padding=0)
        self.plots["levels"].setYRange(LEVEL_FLOOR_DB, 0, padding=0)
        self.plots["compute"].setYRange(0, 25, padding=0)
        self.plots["latency"].setYRange(0, 100, padding=0)
        self._ranges = {"compute": (0.0, 25.0), "latency": (0.0, 100.0)}

        def curve(plot: str, color: QColor, name: str, width: float = 1.0) -> pg.PlotDataItem:
            # 1-pixel cosmetic pens: wider pens are several times slower to rasterise
            item = self.plots[plot].plot(
                pen=pg.mkPen(color, width=width), name=name, skipFiniteCheck=True
            )
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
            return item

        for key in ("compute", "levels", "latency"):
            self.plots[key].addLegend(offset=(-4, 2), labelTextSize="8pt")
        self.compute = curve("compute", series_color(0), "compute")
        self.block_line = pg.InfiniteLine(
            angle=0,
            movable=False,
            label="block {value:.1f} ms",
            pen=pg.mkPen(series_color(5), width=1.5, style=Qt.PenStyle.DashLine),
            labelOpts={"position": 0.06},
        )
        self.plots["compute"].addItem(self.block_line)
        self.rtf = curve("rtf", series_color(2), "RTF")
        self.rtf_line = pg.InfiniteLine(
            pos=1.0,
            angle=0,
            movable=False,
            pen=pg.mkPen(series_color(5), width=1.5, style=Qt.PenStyle.DashLine),
        )
        self.plots["rtf"].addItem(self.rtf_line)
        self.input_level = curve("levels", series_color(3), "input")
        self.output_level = curve("levels", series_color(6), "output")
        self.algorithmic = curve("latency", series_color(1), "algorithmic")
        self.end_to_end = curve("latency", series_color(7), "end-to-end")
        self.measured_line = pg.InfiniteLine(
            angle=0,
            movable=False,
            label="measured",
            pen=pg.mkPen(series_color(8), width=1.5, style=Qt.PenStyle.DotLine),
        )
        self.measured_line.hide()
        self.plots["latency"].addItem(self.measured_line)
        # xruns, dropped blocks and voice errors as markers on the compute plot
        self.markers = {
            Metrics.EVENT_XRUN: ("xrun", "t", series_color(0, 3)),
            Metrics.EVENT_DROP: ("drop", "x", series_color(1, 3)),
            Metrics.EVENT_ERROR: ("voice error", "o", series_color(2, 3)),
            Metrics.EVENT_UNDERRUN: ("underrun", "d", series_color(0, 3)),
        }
        self.scatter: dict[int, pg.ScatterPlotItem] = {}
        for flag, (name, symbol, color) in self.markers.items():
            sc = pg.ScatterPlotItem(
                symbol=symbol, size=9, pen=pg.mkPen(color), brush=pg.mkBrush(color), name=name
            )
            self.plots["compute"].addItem(sc)
            self.scatter[flag] = sc
        self._rtf_top = 1.2
        self._source: Metrics | None = None
        self._count = -1
        self.frames = 0  # redraws done (for tests and the fps readout)
        self.apply_palette()

    # ---- theming -----------------------------------------------------------------------------
    def apply_palette(self) -> None:
        """Take the background and text colours from the Qt palette (light or dark theme)."""
        pal = self.palette()
        bg = pal.color(QPalette.ColorRole.Base)
        fg = pal.color(QPalette.ColorRole.Text)
        self.view.setBackground(bg)
        for plot in self.plots.values():
            plot.titleLabel.setAttr("color", fg.name())
            plot.titleLabel.setText(plot.titleLabel.text)
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(pg.mkPen(pal.color(QPalette.ColorRole.Mid)))
                axis.setTextPen(pg.mkPen(fg))
            if plot.legend is not None:
                plot.legend.setLabelTextColor(fg)
                veil = QColor(bg)
                veil.setAlpha(200)  # readable over the curves, in light and dark themes
                plot.legend.setBrush(pg.mkBrush(veil))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.apply_palette()
        super().changeEvent(event)

    # ---- data --------------------------------------------------------------------------------
    def clear(self) -> None:
        for item in (
            self.compute,
            self.rtf,
            self.input_level,
            self.output_level,
            self.algorithmic,
            self.end_to_end,
        ):
            item.setData([], [])
        for sc in self.scatter.values():
            sc.setData([], [])
        self._count = -1

    def _set_range(self, key: str, lo: float, hi: float) -> None:
        new = _fit(self._ranges[key], lo, hi)
        if new is not None:
            self._ranges[key] = new
            self.plots[key].setYRange(*new, padding=0)

    def _show_legend(self, budget: LatencyBudget) -> None:
        parts = []
        for part in PARTS:
            value = getattr(budget, part) * 1e3
            if value > 0:
                color = part_color(part).name()
                parts.append(
                    f'<span style="color:{color}">&#9632;</span>&nbsp;'
                    f"{PART_LABELS[part]}&nbsp;{value:.1f}"
                )
        text = " &nbsp; ".join(parts) + " ms" if parts else ""
        if text != self.legend.text():
            self.legend.setText(text)

    def update_metrics(self, metrics: Metrics | None, snap: MetricsSnapshot) -> bool:
        """Redraw from ``metrics`` if new blocks arrived; returns whether anything was drawn."""
        self.latency_bar.set_budget(snap.latency, snap.measured_latency)
        self._show_legend(snap.latency)
        if metrics is None:
            return False
        if metrics is self._source and metrics.count == self._count:
            return False
        self._source, self._count = metrics, metrics.count
        block_s = snap.latency.block or 0.02
        n = min(HISTORY, math.ceil(WINDOW_S / block_s) + 2)
        h = metrics.history(n)
        t = h["t"]
        if len(t) < 2:
            return False
        x = t - t[-1]
        keep = x >= -WINDOW_S
        x = x[keep]
        compute = h["compute_ms"][keep]
        self.compute.setData(x, compute)
        self.block_line.setValue(block_s * 1e3)
        self._set_range("compute", 0.0, max(block_s * 1e3, float(compute.max())))
        rtf = h["rtf"][keep]
        self.rtf.setData(x, rtf)
        top = max(1.2, float(rtf.max()) * 1.1) if len(rtf) else 1.2
        if abs(top - self._rtf_top) > 0.05:  # rescale only on real change: no jitter at 30 fps
            self._rtf_top = top
            self.plots["rtf"].setYRange(0, top, padding=0)
        self.input_level.setData(x, np.maximum(h["input_db"][keep], LEVEL_FLOOR_DB))
        self.output_level.setData(x, np.maximum(h["output_db"][keep], LEVEL_FLOOR_DB))
        lat = snap.latency
        algo = h["latency_ms"][keep]
        e2e = algo + (lat.end_to_end - lat.algorithmic) * 1e3
        self.algorithmic.setData(x, algo)
        self.end_to_end.setData(x, e2e)
        top = float(e2e.max())
        if snap.measured_latency is not None:
            self.measured_line.setValue(snap.measured_latency * 1e3)
            self.measured_line.show()
            top = max(top, snap.measured_latency * 1e3)
        else:
            self.measured_line.hide()
        self._set_range("latency", 0.0, top)
        events = h["events"][keep].astype(np.int64)
        for flag, sc in self.scatter.items():
            hit = (events & flag) != 0
            sc.setData(x[hit], compute[hit]) if hit.any() else sc.setData([], [])
        self.view.scene().prepareForPaint()  # see PlotView
        self.frames += 1
        return True
