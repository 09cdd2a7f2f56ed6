"""An audio host that can be given a file-size limit (RLIMIT_FSIZE), as a nearly full disk or a
filesystem's largest file would impose. Runs in the audio host process
(``AudioHost(service=...)``)."""

from __future__ import annotations

import resource
import signal

from voicegui.engine.host import HostService

SERVICE = "tests.ui.record_host:LimitedHost"


class LimitedHost(HostService):
    def do_debug_limit_file_size(self, size: int) -> None:
        """Files this process writes cannot grow beyond ``size`` bytes (writes fail with EFBIG,
        as the default action of SIGXFSZ, ending the process, is turned off)."""
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
