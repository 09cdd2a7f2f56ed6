"""How the audio host's threads are scheduled on Linux: a slow command's thread gets more of the
CPU than busy programs, and the threads it starts (a math library's workers) do not."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from voicegui.engine.priority import NICE_BOOST, favour_ordinary_thread

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's"
)


def _on_a_new_thread(fn: Callable[[], Any]) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller)
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(10.0)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _scheduling() -> tuple[int, int]:
    """The calling thread's policy (with its flags) and nice value."""
    return os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_favoured_thread_gets_a_nice_boost_that_its_own_threads_do_not_inherit():
    base_policy, base_nice = _scheduling()

    def favoured() -> tuple:
        how = favour_ordinary_thread()
        return how, _scheduling(), _on_a_new_thread(_scheduling)

    how, (policy, nice), (child_policy, child_nice) = _on_a_new_thread(favoured)
    if how:  # the OS allowed it (root, CAP_SYS_NICE, RLIMIT_NICE or rtkit)
        assert nice == NICE_BOOST, how
        assert policy == os.SCHED_OTHER | os.SCHED_RESET_ON_FORK
        # what it starts is ordinary again: nice 0, no flag
        assert (child_policy, child_nice) == (os.SCHED_OTHER, 0)
    else:  # refused: nothing changed, and it says so with ""
        assert nice == base_nice
        assert child_nice == base_nice
    # the thread that asked is the only one raised
    assert _scheduling() == (base_policy, base_nice)
