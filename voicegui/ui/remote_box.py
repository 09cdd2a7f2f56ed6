"""The Remote GPU box of the voice panel: the server's address, its access token (kept in the
config folder, never in presets), its TLS certificate, and a Test button that shows the round
trip and what the server computes on."""

from __future__ import annotations

import threading

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from voicegui.remote.auth import save_token, saved_token


class RemoteBox(QWidget):
    changed = Signal(dict)  # voice settings changes: remote_address, remote_ca
    tested = Signal(dict)  # the Test button's result (from its thread)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.voice = "seedvc"  # the voice the server is to compute (what Test asks about)
        self.address = QLineEdit()
        self.address.setPlaceholderText("host:port of `voicegui serve` (e.g. gpu-box:8765)")
        self.address.setAccessibleName("Remote GPU server address")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("the server's access token")
        self.token.setAccessibleName("Remote GPU access token")
        self.certificate = QLineEdit()
        self.certificate.setPlaceholderText("server certificate for TLS (empty: no TLS)")
        self.certificate.setAccessibleName("Remote GPU server certificate")
        self.certificate.setToolTip(
            "The PEM certificate the server was started with (voicegui serve --tls-cert), or "
            "the authority that signed it. Empty: the connection is not encrypted."
        )
        self.browse = QPushButton("Choose…")
        self.browse.setAccessibleName("Choose the server certificate")
        self.test = QPushButton("&Test")
        self.test.setAccessibleName("Test the Remote GPU server")
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setAccessibleName("Remote GPU test result")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Server", self.address)
        form.addRow("Token", self.token)
        cert = QHBoxLayout()
        cert.addWidget(self.certificate, 1)
        cert.addWidget(self.browse)
        form.addRow("Certificate", cert)
        row = QHBoxLayout()
        row.addWidget(self.test)
        row.addWidget(self.result, 1)
        form.addRow("", row)
        self.address.editingFinished.connect(self._on_address)
        self.token.editingFinished.connect(self._on_token)
        self.certificate.editingFinished.connect(self._on_certificate)
        self.browse.clicked.connect(self._browse)
        self.test.clicked.connect(self.run_test)
        self.tested.connect(self._show_result)

    def set_values(self, address: str, ca: str) -> None:
        if self.address.text() != address:
            self.address.setText(address)
            self.token.setText(saved_token(address) if address else "")
        if self.certificate.text() != ca:
            self.certificate.setText(ca)

    def _on_address(self) -> None:
        address = self.address.text().strip()
        if self.token.text():
            save_token(address, self.token.text())
        else:
            self.token.setText(saved_token(address))
        self.changed.emit({"remote_address": address})

    def _on_certificate(self) -> None:
        self.changed.emit({"remote_ca": self.certificate.text().strip()})

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "The server's certificate",
            self.certificate.text(),
            "Certificates (*.pem *.crt *.cer);;All files (*)",
        )
        if path:
            self.certificate.setText(path)
            self._on_certificate()

    def _on_token(self) -> None:
        if self.address.text().strip():
            save_token(self.address.text(), self.token.text())

    def run_test(self) -> None:
        """Probe the server in a thread; the result comes back as ``tested``."""
        from voicegui.remote.probe import probe

        address, token = self.address.text().strip(), self.token.text().strip()
        ca = self.certificate.text().strip() or None
        if address and token:
            save_token(address, token)
        self.test.setEnabled(False)
        self.result.setText("testing…")
        voice = self.voice
        threading.Thread(
            target=lambda: self.tested.emit(probe(address, token, ca, voice)), daemon=True
        ).start()

    def _show_result(self, result: dict) -> None:
        self.test.setEnabled(True)
        if result.get("ok"):
            streams = int(result.get("streams", 0))
            self.result.setText(
                f"round trip {result['round_trip_ms']:.1f} ms; {result.get('provider', '?')} "
                f"on {result.get('device', '?')} ({result.get('server', '')}, "
                f"{streams} live stream{'s' if streams != 1 else ''})" + _served_models(result)
            )
        else:
            self.result.setText(f"not usable: {result.get('error', 'no answer')}")


def _served_models(result: dict) -> str:
    """What an RVC server holds in its own library (the app sends any other voice file)."""
    models = result.get("models")
    if not isinstance(models, list):
        return ""
    if not models:
        return "; its RVC library is empty (your voice file is sent to it when used)"
    shown = ", ".join(str(m) for m in models[:8]) + (", …" if len(models) > 8 else "")
    return f"; its RVC voices: {shown} (others are sent to it when used)"
