"""Linux: give child processes the user's LD_LIBRARY_PATH back; find the system's CA certificates.

The bootloader points LD_LIBRARY_PATH at the bundle so that the app finds its libraries. The
dynamic loader reads it once, at process start, so restoring it here changes nothing for the app
itself; but without this, every program the app starts (jackd, jack_connect, xdg-open opening the
log folder, a file manager) would load the bundle's libraries instead of its own, and may fail.

The bundled OpenSSL looks for CA certificates where the build machine's distribution keeps them
(Debian: /usr/lib/ssl); on Fedora, openSUSE or Alpine model downloads would fail certificate
checks. SSL_CERT_FILE, when the user has not set it, names the system's bundle instead.
"""

import os
import sys

CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora, RHEL (newer)
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, Void
)


def _restore() -> None:
    if not sys.platform.startswith("linux"):
        return
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original:
        os.environ["LD_LIBRARY_PATH"] = original
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)
    if not os.environ.get("SSL_CERT_FILE") and not os.environ.get("SSL_CERT_DIR"):
        for path in CA_BUNDLES:
            if os.path.isfile(path):
                os.environ["SSL_CERT_FILE"] = path
                break


_restore()
