"""What a failed connection to a `voicegui serve` server means, in the user's words.

gRPC reports a refused TLS handshake, a plain client talking to a TLS server and a server
that is not there as one status (UNAVAILABLE) with the transport's own text; the window and
the command line say which it is and what to do instead.
"""

from __future__ import annotations

from pathlib import Path

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


class CertificateError(ValueError):
    """A certificate file that cannot be used (missing, unreadable, not PEM)."""


def read_certificate(path: str | Path) -> bytes:
    """The PEM certificate(s) in ``path`` that the server's certificate must be (or be signed
    by)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(
            f"cannot read the server's certificate {path}: {exc.strerror or exc}"
        ) from None
    if PEM_CERTIFICATE not in data:
        raise CertificateError(f"{path} is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    return data


def describe(error: object, address: str, tls: bool, connected: bool) -> str:
    """``error``: what tritonclient/gRPC said; ``connected``: a reply came on this connection
    before (then the link broke, rather than never formed)."""
    text = str(error)
    low = text.lower()
    host = address.rsplit(":", 1)[0].strip("[]")
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        return (
            f"{address} presented a TLS certificate that the given certificate does not "
            "verify (a different server, or the wrong certificate file)"
        )
    if "hostname verification" in low or ("peer name" in low and "not in peer cert" in low):
        return f"the server's TLS certificate is not issued for '{host}' (use the name it has)"
    if "wrong_version_number" in low or "security handshaker" in low:
        return (
            f"{address} does not answer with TLS: clear the certificate, or start the server "
            "with --tls-cert and --tls-key"
        )
    if "connection refused" in low:
        return f"nothing answers at {address} (is `voicegui serve` running there, on that port?)"
    if "resolving" in low or "domain name not found" in low or "name resolution" in low:
        return f"'{host}' is not a known host name"
    if not connected and not tls and ("socket closed" in low or "connection reset" in low):
        return (
            f"{address} closed the connection at once: if it serves with TLS, give its certificate"
        )
    if connected and ("socket closed" in low or "stream removed" in low or "unavailable" in low):
        return f"the connection to {address} was closed"
    if "unknown model" in low or ("model" in low and "is not found" in low):
        return (
            f"{address} does not serve this voice: start the server with it in --voices "
            "(e.g. `voicegui serve --voices seedvc,rvc`)"
        )
    return f"the connection to {address} failed: {text}"
