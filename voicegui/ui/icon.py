"""The application icon (resources/icons/voicegui.svg, with a PNG fallback)."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from voicegui import paths


def app_icon() -> QIcon:
    icon = QIcon()
    svg = paths.resource("icons", "voicegui.svg")
    if svg.is_file():
        icon = QIcon(str(svg))
    if icon.isNull():  # no SVG icon engine (stripped bundle): use the PNG
        png = paths.resource("icons", "voicegui.png")
        if png.is_file():
            icon = QIcon(str(png))
    return icon
