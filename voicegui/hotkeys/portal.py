"""Wayland: global shortcuts through the desktop's GlobalShortcuts portal (D-Bus, via jeepney).

On Wayland no program may watch the keys typed in another one; the compositor itself offers
global shortcuts through xdg-desktop-portal's org.freedesktop.portal.GlobalShortcuts interface
(KDE Plasma 6, GNOME 48 and Hyprland among others). voicegui asks for one shortcut per bound
action with its combination as the *preferred* trigger; the desktop may show its own dialog and
let the user confirm or pick other keys, and says which trigger it assigned. Activated and
Deactivated signals then give press and release, which push-to-talk needs.

The conversation: CreateSession -> Response(session_handle); BindShortcuts -> Response(shortcuts
with trigger_description); then Activated/Deactivated(session_handle, shortcut id, ...). Each
call returns a Request object whose Response signal carries the answer; the Request's path is
known in advance from the caller's unique name and a token, so the match is added before calling.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import Any

from voicegui.hotkeys.backend import BackendStatus, Emit, HotkeyBackendError
from voicegui.hotkeys.bindings import ACTION_IDS, MODIFIERS, Bindings, KeyCombo

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
INTERFACE = "org.freedesktop.portal.GlobalShortcuts"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"
PROBE_TIMEOUT = 3.0  # s: the portal may be started on demand by the bus
CALL_TIMEOUT = 5.0
# XDG shortcut triggers name modifiers CTRL, ALT, SHIFT, LOGO and the key by its keysym name
TRIGGER_MODIFIERS = {"ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "super": "LOGO"}


def trigger(combo: KeyCombo) -> str:
    """The XDG shortcut trigger for ``combo``: "CTRL+ALT+m", "LOGO+F5"."""
    from voicegui.hotkeys.pynput_backend import X11_KEYSYM_NAME

    mods = [TRIGGER_MODIFIERS[m] for m in MODIFIERS if m in combo.modifiers]
    return "+".join([*mods, X11_KEYSYM_NAME.get(combo.key, combo.key)])


def _connect() -> Any:
    from jeepney.io.blocking import open_dbus_connection

    return open_dbus_connection("SESSION")


def _error_name(msg: Any) -> str:
    from jeepney.low_level import HeaderFields, MessageType

    if msg.header.message_type == MessageType.error:
        return str(msg.header.fields.get(HeaderFields.error_name, "error"))
    return ""


def portal_version(timeout: float = PROBE_TIMEOUT) -> tuple[int, str]:
    """(GlobalShortcuts interface version, '') when the desktop offers it, else (0, why not)."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not os.environ.get("XDG_RUNTIME_DIR"):
        return 0, "there is no D-Bus session bus to reach the desktop portal"
    try:
        from jeepney import DBusAddress, Properties
    except ImportError:
        return 0, "jeepney (the D-Bus client) is not installed"
    try:
        conn = _connect()
    except Exception as exc:
        return 0, f"the D-Bus session bus cannot be reached ({exc})"
    try:
        addr = DBusAddress(PATH, bus_name=BUS_NAME, interface=INTERFACE)
        reply = conn.send_and_get_reply(Properties(addr).get("version"), timeout=timeout)
    except TimeoutError:
        return 0, "the desktop portal did not answer"
    except Exception as exc:
        return 0, f"the desktop portal cannot be asked ({exc})"
    finally:
        conn.close()
    error = _error_name(reply)
    if error.endswith(("ServiceUnknown", "NameHasNoOwner")):
        return 0, "no desktop portal (xdg-desktop-portal) runs in this session"
    if error:
        return 0, (
            "the desktop portal has no GlobalShortcuts interface: this compositor does not "
            "offer global shortcuts to applications"
        )
    try:
        _sig, version = reply.body[0]
        return int(version), ""
    except (IndexError, TypeError, ValueError):
        return 0, "the desktop portal gave an unreadable answer"


class PortalBackend:
    kind = "Wayland"

    def __init__(self, version: int) -> None:
        self.version = version
        self.assigned: dict[str, str] = {}  # action -> the trigger the desktop assigned
        self._error = ""
        self._state = ""  # '', 'binding', 'listening'
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._session = ""

    def status(self) -> BackendStatus:
        if self._error:
            return BackendStatus("Wayland", False, f"Wayland: {self._error}")
        text = f"Global hotkeys: Wayland (desktop portal, GlobalShortcuts v{self.version})"
        if self._state == "binding":
            text += " - confirm the shortcuts in the desktop's dialog"
        detail = ""
        if self.assigned:
            keys = "; ".join(
                f"{ACTION_IDS[a].label}: {t or 'none'}"
                for a, t in self.assigned.items()
                if a in ACTION_IDS
            )
            detail = f"The desktop chose these keys (change them in its settings): {keys}"
        return BackendStatus("Wayland", True, text, detail=detail)

    def check(self, combo: KeyCombo) -> str:
        return ""  # the compositor decides, and may offer other keys

    @property
    def listening(self) -> bool:
        return self._state == "listening" and self._thread is not None and self._thread.is_alive()

    def start(self, bindings: Bindings, emit: Emit) -> None:
        self.stop()
        self._error, self._state = "", "binding"
        try:
            conn = _connect()
        except Exception as exc:
            self._error = f"the D-Bus session bus cannot be reached ({exc})"
            raise HotkeyBackendError(f"Wayland: {self._error}") from exc
        self._stop = stop = threading.Event()  # this run's own: an old thread may linger
        shortcuts = [
            (action, {
                "description": ("s", ACTION_IDS[action].label),
                "preferred_trigger": ("s", trigger(combo)),
            })
            for action, combo in bindings.keys.items()
        ]  # fmt: skip
        self._thread = threading.Thread(
            target=self._run, args=(conn, shortcuts, emit, stop), name="voicegui-hotkeys-portal",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        self._state = ""

    # ---- the D-Bus conversation --------------------------------------------------------------
    def _request_path(self, conn: Any, token: str) -> str:
        sender = conn.unique_name.lstrip(":").replace(".", "_")
        return f"{PATH}/request/{sender}/{token}"

    def _call(
        self, conn: Any, method: str, signature: str, body: tuple, token: str, stop: Any
    ) -> dict:
        """Call a portal method that answers through a Request's Response signal."""
        from jeepney import DBusAddress, MatchRule, new_method_call
        from jeepney.low_level import HeaderFields, MessageType

        path = self._request_path(conn, token)
        rule = MatchRule(type="signal", interface=REQUEST, member="Response", path=path)
        conn.bus_proxy.AddMatch(rule)
        addr = DBusAddress(PATH, bus_name=BUS_NAME, interface=INTERFACE)
        reply = conn.send_and_get_reply(
            new_method_call(addr, method, signature, body), timeout=CALL_TIMEOUT
        )
        error = _error_name(reply)
        if error:
            raise HotkeyBackendError(f"{method}: {error}")
        # the answer may take as long as the user takes in the desktop's dialog
        while not stop.is_set():
            try:
                msg = conn.receive(timeout=0.25)
            except TimeoutError:
                continue
            if (
                msg.header.message_type == MessageType.signal
                and msg.header.fields.get(HeaderFields.path) == path
            ):
                response, results = msg.body
                if response == 1:
                    raise HotkeyBackendError(
                        "the desktop's shortcuts dialog was cancelled: no hotkeys are bound"
                    )
                if response != 0:
                    raise HotkeyBackendError(f"the desktop refused the shortcuts ({method})")
                return {k: v[1] for k, v in results.items()}
        raise HotkeyBackendError("stopped")

    def _create_session(self, conn: Any, stop: Any) -> str:
        token = "voicegui" + secrets.token_hex(4)
        options = {
            "handle_token": ("s", token),
            "session_handle_token": ("s", "voicegui" + secrets.token_hex(4)),
        }
        results = self._call(conn, "CreateSession", "a{sv}", (options,), token, stop)
        return str(results["session_handle"])

    def _run(self, conn: Any, shortcuts: list, emit: Emit, stop: Any) -> None:
        from jeepney import MatchRule
        from jeepney.low_level import HeaderFields, MessageType

        try:
            try:
                self._session = self._create_session(conn, stop)
            except HotkeyBackendError as exc:
                raise HotkeyBackendError(
                    f"the desktop portal refused a shortcuts session ({exc})"
                ) from exc
            for member in ("Activated", "Deactivated", "ShortcutsChanged"):
                conn.bus_proxy.AddMatch(
                    MatchRule(type="signal", interface=INTERFACE, member=member)
                )
            token = "voicegui" + secrets.token_hex(4)
            options = {"handle_token": ("s", token)}
            results = self._call(
                conn, "BindShortcuts", "oa(sa{sv})sa{sv}",
                (self._session, shortcuts, "", options), token, stop,
            )  # fmt: skip
            self._note_assigned(results.get("shortcuts", []))
            self._state = "listening"
            log.info("global hotkeys bound through the portal: %s", self.assigned)
            held: set[str] = set()
            while not stop.is_set():
                try:
                    msg = conn.receive(timeout=0.25)
                except TimeoutError:
                    continue
                if msg.header.message_type != MessageType.signal:
                    continue
                if msg.header.fields.get(HeaderFields.interface) != INTERFACE:
                    continue
                member = msg.header.fields.get(HeaderFields.member)
                if member == "ShortcutsChanged":
                    self._note_assigned(msg.body[1])
                    continue
                if member not in ("Activated", "Deactivated") or msg.body[0] != self._session:
                    continue
                action, down = str(msg.body[1]), member == "Activated"
                if action not in ACTION_IDS:
                    continue
                if down:
                    held.add(action)
                else:
                    held.discard(action)
                emit(action, down)
            for action in held:
                emit(action, False)  # a held push-to-talk ends with the listener
        except Exception as exc:
            if not stop.is_set():
                self._error = str(exc)
                log.warning("portal shortcuts ended: %s", exc)
        finally:
            self._close(conn)
            self._state = ""

    def _note_assigned(self, shortcuts: Any) -> None:
        assigned = {}
        for item in shortcuts or []:
            try:
                sid, props = item
                desc = props.get("trigger_description", ("s", ""))[1]
            except (TypeError, ValueError, AttributeError):
                continue
            assigned[str(sid)] = str(desc)
        self.assigned = assigned

    def _close(self, conn: Any) -> None:
        from jeepney import DBusAddress, new_method_call

        try:
            if self._session:
                addr = DBusAddress(self._session, bus_name=BUS_NAME, interface=SESSION)
                conn.send(new_method_call(addr, "Close"))
        except Exception:
            pass
        finally:
            self._session = ""
            conn.close()
