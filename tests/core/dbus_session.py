"""A private D-Bus session bus (the system's dbus-daemon), and a desktop portal that offers
GlobalShortcuts on it the way a compositor's portal backend answers (CreateSession, BindShortcuts,
Response signals on Request objects, Activated/Deactivated), for the Wayland hotkey tests: no
compositor here offers the real one."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from contextlib import contextmanager

BUS_NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
GS = "org.freedesktop.portal.GlobalShortcuts"
REQUEST = "org.freedesktop.portal.Request"
PROPS = "org.freedesktop.DBus.Properties"
SESSION = "org.freedesktop.portal.Session"

HAVE_DBUS = shutil.which("dbus-daemon") is not None


@contextmanager
def session_bus():
    """Start a session bus; yields its address."""
    proc = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = proc.stdout.readline().strip()
        if not address:
            raise RuntimeError("dbus-daemon did not start")
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


class Portal:
    """Serves org.freedesktop.portal.Desktop on the session bus from a thread.

    ``version``: the GlobalShortcuts version to offer (0: the interface is missing, as on a
    desktop whose compositor offers no global shortcuts). ``answer``: the Response code for
    BindShortcuts (0 success, 1 the user cancelled the desktop's dialog)."""

    def __init__(self, version: int = 1, answer: int = 0, assign: dict | None = None) -> None:
        self.version, self.answer = version, answer
        self.assign = assign or {}  # shortcut id -> the trigger the "desktop" picks instead
        self.bound: list = []  # the shortcuts BindShortcuts received
        self.sessions: list[str] = []
        self.closed: list[str] = []
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Portal:
        self._thread.start()
        assert self._ready.wait(5), "the test portal did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def press(self, shortcut: str, down: bool) -> None:
        """The user presses (or releases) a shortcut the desktop bound."""
        self._outbox.put(("Activated" if down else "Deactivated", shortcut))

    # ---- the service ---------------------------------------------------------------------------
    def _serve(self) -> None:
        from jeepney import DBusAddress, new_error, new_method_return, new_signal
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.low_level import HeaderFields, MessageType

        conn = open_dbus_connection("SESSION")
        conn.send_and_get_reply(message_bus.RequestName(BUS_NAME))
        self._ready.set()
        emitter = DBusAddress(PATH, interface=GS)
        timestamp = 0
        while not self._stop.is_set():
            while not self._outbox.empty():
                member, shortcut = self._outbox.get()
                timestamp += 1
                for session in self.sessions:
                    conn.send(new_signal(emitter, member, "osta{sv}",
                                         (session, shortcut, timestamp, {})))  # fmt: skip
            try:
                msg = conn.receive(timeout=0.05)
            except TimeoutError:
                continue
            h = msg.header
            if h.message_type != MessageType.method_call:
                continue
            iface, member = h.fields.get(HeaderFields.interface), h.fields.get(HeaderFields.member)
            sender = str(h.fields.get(HeaderFields.sender, ""))
            if (iface, member) == (PROPS, "Get"):
                if msg.body[0] == GS and msg.body[1] == "version" and self.version:
                    conn.send(new_method_return(msg, "v", (("u", self.version),)))
                else:
                    conn.send(new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", "s",
                                        ("No such interface",)))  # fmt: skip
            elif iface == GS and self.version and member in ("CreateSession", "BindShortcuts"):
                options = msg.body[0] if member == "CreateSession" else msg.body[3]
                token = options["handle_token"][1]
                request = f"{PATH}/request/{sender.lstrip(':').replace('.', '_')}/{token}"
                conn.send(new_method_return(msg, "o", (request,)))
                if member == "CreateSession":
                    session = f"{PATH}/session/x/{options['session_handle_token'][1]}"
                    self.sessions.append(session)
                    code, results = 0, {"session_handle": ("o", session)}
                else:
                    self.bound = list(msg.body[1])
                    chosen = [
                        (sid, {"description": props["description"],
                               "trigger_description": ("s", self.assign.get(
                                   sid, props["preferred_trigger"][1]))})
                        for sid, props in self.bound
                    ]  # fmt: skip
                    code, results = self.answer, {"shortcuts": ("a(sa{sv})", chosen)}
                conn.send(new_signal(DBusAddress(request, interface=REQUEST), "Response",
                                     "ua{sv}", (code, results)))  # fmt: skip
            elif iface == SESSION and member == "Close":
                self.closed.append(str(h.fields.get(HeaderFields.path)))
                conn.send(new_method_return(msg))
            else:
                conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))
        conn.close()
