"""A real X server (Xvfb) and another program's window holding the keyboard focus, for the
global hotkey tests: keys are typed with xdotool (XTest), as a user types into a game."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import textwrap
import threading

HAVE_X = shutil.which("Xvfb") is not None and shutil.which("xdotool") is not None

# a plain X window (python-xlib) that takes the focus and prints each key it receives
FOCUSED_WINDOW = textwrap.dedent(
    """
    import sys
    from Xlib import X, XK, display

    NAMES = {getattr(XK, n): n[3:] for n in dir(XK) if n.startswith("XK_")}
    d = display.Display()
    root = d.screen().root
    w = root.create_window(10, 10, 300, 200, 0, d.screen().root_depth,
                           event_mask=X.KeyPressMask | X.FocusChangeMask)
    w.set_wm_name("another program")
    w.map()
    d.sync()
    w.set_input_focus(X.RevertToParent, X.CurrentTime)
    d.sync()
    print("ready", w.id, flush=True)
    while True:
        e = d.next_event()
        if e.type == X.KeyPress:
            keysym = d.keycode_to_keysym(e.detail, 0)
            print("key", NAMES.get(keysym, keysym), e.state, flush=True)
    """
)


def start_xvfb(size: str = "1024x768") -> tuple[subprocess.Popen, str]:
    """Xvfb on a display it picks itself (-displayfd), with one screen of ``size`` (WxH)."""
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


class FocusedWindow:
    """Another program's window with the keyboard focus; ``received`` says what it got."""

    def __init__(self, display: str) -> None:
        self.env = dict(os.environ, DISPLAY=display)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FOCUSED_WINDOW],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.proc.kill()
            raise RuntimeError(f"the other window did not start: {line}")
        self.id = int(line[1])
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.split())

    def received(self) -> list[str]:
        """Key names received so far (drains them)."""
        out = []
        while not self.lines.empty():
            parts = self.lines.get()
            if parts and parts[0] == "key":
                out.append(parts[1])
        return out

    def has_focus(self) -> bool:
        focus = xdotool(self.env, "getwindowfocus").strip()
        return focus == str(self.id)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def xdotool(env: dict, *args: str) -> str:
    out = subprocess.run(
        ["xdotool", *args], env=env, capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout
