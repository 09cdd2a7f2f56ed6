"""Ask the OS for real-time scheduling of the calling thread (the engine's block thread).

Linux: SCHED_FIFO directly (allowed by RLIMIT_RTPRIO or CAP_SYS_NICE), else through rtkit on the
system bus, else a nice boost. Windows: MMCSS "Pro Audio". macOS: a time-constraint thread policy.
Each returns what was granted and why, for the app to show; none raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

FIFO_PRIORITY = 55  # below the audio servers' threads (JACK: 60-80), above everything else
RTKIT_PRIORITY = 20  # rtkit's usual ceiling
NICE_BOOST = -11


@dataclass(frozen=True)
class Priority:
    realtime: bool
    how: str

    def __str__(self) -> str:
        return f"real-time priority: {'yes' if self.realtime else 'no'} ({self.how})"


HELPER_PRIORITY = 50  # the audio host's command thread: below the block thread


def raise_helper_thread() -> bool:
    """Give a short-running helper thread of the audio host (commands) real-time priority
    below the block thread's, where Linux allows it without asking anyone.

    The block thread shares the interpreter lock with it: a helper preempted by a busy program
    while it holds the lock would hold up the block thread too.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(HELPER_PRIORITY))
        return True
    except (PermissionError, OSError):
        return False


def normal_thread() -> None:
    """Back to ordinary scheduling for the calling thread.

    Linux threads inherit their creator's policy: a thread started from a real-time thread (the
    audio host's command thread) would run a neural voice's math, and the math library's own
    worker threads it starts, at real-time priority, starving the desktop.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


@contextlib.contextmanager
def ordinary_priority() -> Iterator[None]:
    """Run a command at ordinary priority on the (real-time) command thread, then go back.

    For calls into libraries that start threads of their own: PortAudio's initialisation opens a
    JACK client whose threads would otherwise inherit the command thread's real-time policy.
    """
    was_raised = sys.platform.startswith("linux") and os.sched_getscheduler(0) == os.SCHED_FIFO
    if was_raised:
        normal_thread()
    try:
        yield
    finally:
        if was_raised:
            raise_helper_thread()


def request_realtime(period: float, compute: float) -> Priority:
    """Raise the calling thread's priority; ``period``/``compute`` (s) describe its duty cycle."""
    try:
        if sys.platform.startswith("linux"):
            return _linux()
        if sys.platform == "win32":
            return _windows()
        if sys.platform == "darwin":
            return _macos(period, compute)
    except Exception as exc:  # never let scheduling stop the audio
        return Priority(False, f"{type(exc).__name__}: {exc}")
    return Priority(False, f"not supported on {sys.platform}")


def _linux() -> Priority:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
        return Priority(True, f"SCHED_FIFO {FIFO_PRIORITY}")
    except PermissionError:
        pass
    why = "SCHED_FIFO not permitted (RLIMIT_RTPRIO is 0)"
    rtkit = _rtkit()
    if rtkit is not None:
        return rtkit
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE_BOOST)
        return Priority(False, f"{why}; no rtkit; nice {NICE_BOOST} instead")
    except PermissionError:
        return Priority(False, f"{why}; no rtkit; normal priority")


def _rtkit() -> Priority | None:
    """rtkit grants SCHED_RR to a thread that limits its CPU time (RLIMIT_RTTIME)."""
    if shutil.which("busctl") is None:  # no one to ask: leave the limit as it was
        return None
    try:
        import resource

        limit = 200_000  # us of real-time CPU without a blocking call before the kernel steps in
        resource.setrlimit(resource.RLIMIT_RTTIME, (limit, limit))
    except (ImportError, ValueError, OSError):
        return None
    if _ask_rtkit("MakeThreadRealtime", "tu", RTKIT_PRIORITY):
        return Priority(True, f"rtkit SCHED_RR {RTKIT_PRIORITY}")
    return None


def _ask_rtkit(method: str, signature: str, value: int) -> bool:
    """Ask rtkit (on the system bus) to raise the calling thread; False when it cannot."""
    busctl = shutil.which("busctl")
    if busctl is None:
        return False
    try:
        done = subprocess.run(
            [busctl, "call", "--system", "org.freedesktop.RealtimeKit1",
             "/org/freedesktop/RealtimeKit1", "org.freedesktop.RealtimeKit1",
             method, signature, str(threading.get_native_id()), str(value)],
            capture_output=True, timeout=2.0, text=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def favour_ordinary_thread() -> str:
    """Give an ordinary thread of the audio host that runs Python for seconds while the engine
    plays (a voice being built, the compute devices probed) more of the CPU than busy programs
    get. Returns how, or "" where the OS refused.

    Such a thread holds the interpreter lock most of that time. Preempted by a busy program, it
    keeps it, and the block thread waits until it runs again (measured: 8 underruns while Seed-VC
    loaded beside the built-in voice under two busy processes). Real-time priority would starve
    the desktop for seconds, and the kernel's real-time throttling would then stop the block
    thread too; a nice boost only shortens the preemptions. Threads it starts (a math library's
    workers) start at ordinary priority (SCHED_RESET_ON_FORK on Linux; Windows does not pass a
    thread's priority on).
    """
    try:
        if sys.platform.startswith("linux"):
            return _favour_linux()
        if sys.platform == "win32":
            kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
            kernel32.GetCurrentThread.restype = ctypes.c_void_p
            this_thread = ctypes.c_void_p(kernel32.GetCurrentThread())
            if kernel32.SetThreadPriority(this_thread, 1):  # THREAD_PRIORITY_ABOVE_NORMAL
                return "above normal"
    except Exception:  # never let scheduling stop a command
        return ""
    return ""


def _favour_linux() -> str:
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE_BOOST)
        return f"nice {NICE_BOOST}"
    except OSError:
        pass
    if _ask_rtkit("MakeThreadHighPriority", "ti", NICE_BOOST):
        return f"rtkit nice {NICE_BOOST}"
    return ""


def _windows() -> Priority:
    avrt = ctypes.WinDLL("avrt")  # type: ignore[attr-defined]
    task = ctypes.c_ulong(0)
    avrt.AvSetMmThreadCharacteristicsW.restype = ctypes.c_void_p
    handle = avrt.AvSetMmThreadCharacteristicsW("Pro Audio", ctypes.byref(task))
    if handle:
        return Priority(True, 'MMCSS "Pro Audio"')
    return Priority(False, f"MMCSS refused (error {ctypes.GetLastError()})")  # type: ignore[attr-defined]


def _macos(period: float, compute: float) -> Priority:
    lib = ctypes.CDLL("/usr/lib/libSystem.dylib")

    class Timebase(ctypes.Structure):
        _fields_ = [("numer", ctypes.c_uint32), ("denom", ctypes.c_uint32)]

    class TimeConstraint(ctypes.Structure):
        _fields_ = [
            ("period", ctypes.c_uint32),
            ("computation", ctypes.c_uint32),
            ("constraint", ctypes.c_uint32),
            ("preemptible", ctypes.c_int),
        ]

    tb = Timebase()
    lib.mach_timebase_info(ctypes.byref(tb))
    ticks_per_s = 1e9 * tb.denom / tb.numer
    policy = TimeConstraint(
        int(period * ticks_per_s),
        int(min(compute, period / 2) * ticks_per_s),
        int(period * ticks_per_s),
        1,
    )
    thread_time_constraint_policy, count = 2, 4
    lib.mach_thread_self.restype = ctypes.c_uint32
    err = lib.thread_policy_set(
        lib.mach_thread_self(), thread_time_constraint_policy, ctypes.byref(policy), count
    )
    if err == 0:
        return Priority(True, "time-constraint policy")
    return Priority(False, f"time-constraint policy refused (kern_return {err})")
