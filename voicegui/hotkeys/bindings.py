"""The hotkey model: actions, key combinations, and the rules a binding must pass.

Pure data and rules, no OS and no Qt: parse and format combinations ("ctrl+alt+m" <->
"Ctrl+Alt+M"), refuse what cannot work (the same combination for two actions, a key that would
fire while typing in another program, combinations the system keeps for itself), and read and
write the saved form, where a corrupt entry is dropped with a note instead of stopping the app.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# ---- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    id: str
    label: str
    momentary: bool = False  # acts while held (press and release), not on each press


ACTIONS: tuple[Action, ...] = (
    Action("push_to_talk", "Push-to-talk (hold)", momentary=True),
    Action("mute", "Mute (toggle)"),
    Action("bypass", "Bypass: hear your dry voice (toggle)"),
    Action("record", "Record start / stop"),
    Action("preset_next", "Next preset"),
    Action("preset_previous", "Previous preset"),
    *(Action(f"preset_{i}", f"Preset {i}") for i in range(1, 10)),
)
ACTION_IDS = {a.id: a for a in ACTIONS}
PRESET_SLOTS = {f"preset_{i}": i for i in range(1, 10)}


class HotkeyError(ValueError):
    """A combination that cannot be read or cannot be used; the message says why."""


# ---- keys ----------------------------------------------------------------------------------

MODIFIERS = ("ctrl", "alt", "shift", "super")  # the order they are written in
MODIFIER_ALIASES = {
    "ctrl": "ctrl", "control": "ctrl", "ctl": "ctrl",
    "alt": "alt", "option": "alt", "opt": "alt",
    "shift": "shift",
    "super": "super", "win": "super", "windows": "super", "meta": "super", "cmd": "super",
    "command": "super", "logo": "super",
}  # fmt: skip

LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")
DIGITS = tuple("0123456789")
# punctuation on the main block, by the character its key types without Shift (US layout)
PUNCTUATION = {
    "minus": "-", "equal": "=", "bracket_left": "[", "bracket_right": "]", "backslash": "\\",
    "semicolon": ";", "apostrophe": "'", "grave": "`", "comma": ",", "period": ".", "slash": "/",
}  # fmt: skip
FUNCTION_KEYS = tuple(f"f{i}" for i in range(1, 25))
EDITING = ("space", "enter", "tab", "backspace", "escape")
NAVIGATION = ("insert", "delete", "home", "end", "page_up", "page_down",
              "up", "down", "left", "right")  # fmt: skip
# keys that type or edit nothing: they may be a hotkey on their own
LONE_KEYS = ("pause", "print_screen", "scroll_lock", "caps_lock", "num_lock", "menu", "insert")

KEYS: tuple[str, ...] = (
    LETTERS + DIGITS + tuple(PUNCTUATION) + FUNCTION_KEYS + EDITING + NAVIGATION
    + tuple(k for k in LONE_KEYS if k not in NAVIGATION)
)  # fmt: skip
KEY_SET = frozenset(KEYS)

KEY_ALIASES = {
    "esc": "escape", "return": "enter", "pgup": "page_up", "pageup": "page_up",
    "pgdown": "page_down", "pgdn": "page_down", "pagedown": "page_down", "del": "delete",
    "ins": "insert", "bksp": "backspace", "prtsc": "print_screen", "print": "print_screen",
    "printscreen": "print_screen", "scrolllock": "scroll_lock", "capslock": "caps_lock",
    "numlock": "num_lock", "break": "pause", "apps": "menu", "spacebar": "space",
    "arrowup": "up", "arrowdown": "down", "arrowleft": "left", "arrowright": "right",
    **{char: name for name, char in PUNCTUATION.items()},
    "-": "minus", "=": "equal", "[": "bracket_left", "]": "bracket_right",
    "backquote": "grave", "quote": "apostrophe", "dot": "period",
}  # fmt: skip

KEY_LABELS = {
    "space": "Space", "enter": "Enter", "tab": "Tab", "backspace": "Backspace",
    "escape": "Esc", "insert": "Insert", "delete": "Delete", "home": "Home", "end": "End",
    "page_up": "Page Up", "page_down": "Page Down", "up": "Up", "down": "Down",
    "left": "Left", "right": "Right", "pause": "Pause", "print_screen": "Print Screen",
    "scroll_lock": "Scroll Lock", "caps_lock": "Caps Lock", "num_lock": "Num Lock",
    "menu": "Menu", **{name: char for name, char in PUNCTUATION.items()},
}  # fmt: skip


def _platform_family(platform: str) -> str:
    if platform.startswith("win"):
        return "windows"
    if platform == "darwin":
        return "macos"
    return "linux"


MODIFIER_LABELS = {
    "linux": {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "super": "Super"},
    "windows": {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "super": "Win"},
    "macos": {"ctrl": "Control", "alt": "Option", "shift": "Shift", "super": "Cmd"},
}


@dataclass(frozen=True)
class KeyCombo:
    """Modifiers held plus one key, e.g. Ctrl+Alt+M. Modifiers are side-agnostic."""

    key: str
    modifiers: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.key not in KEY_SET:
            raise HotkeyError(f"unknown key '{self.key}'")
        bad = set(self.modifiers) - set(MODIFIERS)
        if bad:
            raise HotkeyError(f"unknown modifier '{sorted(bad)[0]}'")
        object.__setattr__(self, "modifiers", frozenset(self.modifiers))

    def __str__(self) -> str:
        return to_text(self)


def parse(text: str) -> KeyCombo:
    """ "Ctrl+Alt+M", "ctrl+alt+m", "Cmd+Shift+F5", "Pause" -> KeyCombo; HotkeyError if not."""
    if not isinstance(text, str) or not text.strip():
        raise HotkeyError("empty key combination")
    raw = text.strip().lower()
    # "+" names the plus key (it shares its key with "=") when it is alone or doubled at the end
    if raw == "+":
        parts = ["+"]
    elif raw.endswith("++"):
        parts = [*raw[:-2].split("+"), "+"]
    else:
        parts = raw.split("+")
    parts = [p.strip().replace(" ", "_").replace("-", "_") if len(p.strip()) > 1 else p.strip()
             for p in parts]  # fmt: skip
    if any(not p for p in parts):
        raise HotkeyError(f"'{text}' has an empty part")
    *mods, key = parts
    modifiers = set()
    for m in mods:
        if m not in MODIFIER_ALIASES:
            if _key_name(m) is not None:
                raise HotkeyError(f"'{text}': a combination has one key, the rest are modifiers")
            raise HotkeyError(f"'{text}': unknown modifier '{m}'")
        modifiers.add(MODIFIER_ALIASES[m])
    if key in MODIFIER_ALIASES:
        raise HotkeyError(f"'{text}': a modifier alone is not a hotkey; add a key to it")
    name = _key_name(key)
    if name is None:
        raise HotkeyError(f"'{text}': unknown key '{key}'")
    return KeyCombo(name, frozenset(modifiers))


def _key_name(token: str) -> str | None:
    if token in KEY_SET:
        return token
    if token == "+":
        return "equal"  # the plus sign shares its key with "="
    alias = KEY_ALIASES.get(token) or KEY_ALIASES.get(token.replace("_", ""))
    return alias if alias in KEY_SET else None


def to_text(combo: KeyCombo) -> str:
    """The saved form: lower case, modifiers in a fixed order, e.g. "ctrl+alt+m"."""
    return "+".join([m for m in MODIFIERS if m in combo.modifiers] + [combo.key])


def label(combo: KeyCombo | None, platform: str = sys.platform) -> str:
    """How the combination is shown: "Ctrl+Alt+M" ("Cmd+Shift+F5" on macOS)."""
    if combo is None:
        return ""
    names = MODIFIER_LABELS[_platform_family(platform)]
    key = KEY_LABELS.get(combo.key, combo.key.upper())
    return "+".join([names[m] for m in MODIFIERS if m in combo.modifiers] + [key])


# ---- what cannot be a hotkey ---------------------------------------------------------------

TYPING_KEYS = frozenset(LETTERS + DIGITS + tuple(PUNCTUATION) + EDITING + NAVIGATION) - set(
    LONE_KEYS
)

_RESERVED_ALL = {
    "ctrl+alt+delete": "the system's secure attention keys",
    "alt+tab": "switching windows",
}
_RESERVED = {
    "linux": {
        **{f"ctrl+alt+f{i}": "switching to a text console" for i in range(1, 13)},
        "ctrl+alt+backspace": "ending the X session",
    },
    "windows": {
        "super+l": "locking the computer",
        "ctrl+shift+escape": "the Task Manager",
        "ctrl+escape": "the Start menu",
    },
    "macos": {
        "super+tab": "switching applications",
        "super+alt+escape": "Force Quit",
        "super+space": "Spotlight",
    },
}


def problem(combo: KeyCombo, platform: str = sys.platform) -> str:
    """Why ``combo`` cannot be a global hotkey, or '' when it can."""
    text = to_text(combo)
    family = _platform_family(platform)
    reserved = {**_RESERVED_ALL, **_RESERVED[family]}
    if text in reserved:
        return f"{label(combo, platform)} is kept by the system for {reserved[text]}"
    if combo.key in TYPING_KEYS and not combo.modifiers & {"ctrl", "alt", "super"}:
        mods = MODIFIER_LABELS[family]
        return (
            f"{label(combo, platform)} would fire whenever you type it in another program; "
            f"add {mods['ctrl']}, {mods['alt']} or {mods['super']}, or use a function key"
        )
    return ""


# ---- bindings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bindings:
    """Which combination triggers which action, and whether push-to-talk gates the voice."""

    keys: Mapping[str, KeyCombo] = field(default_factory=dict)  # action id -> combo
    push_to_talk: bool = True  # with a push-to-talk key bound: silent unless it is held

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", dict(self.keys))

    def get(self, action: str) -> KeyCombo | None:
        return self.keys.get(action)

    def action_for(self, combo: KeyCombo) -> str | None:
        for action, c in self.keys.items():
            if c == combo:
                return action
        return None

    @property
    def push_to_talk_active(self) -> bool:
        return self.push_to_talk and "push_to_talk" in self.keys

    def check(self, action: str, combo: KeyCombo, platform: str = sys.platform) -> str:
        """Why ``combo`` cannot be given to ``action``, or '' when it can."""
        if action not in ACTION_IDS:
            return f"unknown action '{action}'"
        why = problem(combo, platform)
        if why:
            return why
        other = self.action_for(combo)
        if other is not None and other != action:
            return f"{label(combo, platform)} is already the hotkey for {ACTION_IDS[other].label}"
        return ""

    def with_key(
        self, action: str, combo: KeyCombo | None, platform: str = sys.platform
    ) -> Bindings:
        """A copy with ``action`` bound to ``combo`` (None: cleared); HotkeyError if refused."""
        keys = dict(self.keys)
        if combo is None:
            keys.pop(action, None)
        else:
            why = self.check(action, combo, platform)
            if why:
                raise HotkeyError(why)
            keys[action] = combo
        return Bindings(keys, self.push_to_talk)

    def with_push_to_talk(self, on: bool) -> Bindings:
        return Bindings(self.keys, bool(on))

    def conflicts(self) -> list[tuple[str, str, KeyCombo]]:
        """Pairs of actions sharing a combination (a hand-edited file can hold them)."""
        seen: dict[KeyCombo, str] = {}
        found = []
        for action, combo in self.keys.items():
            if combo in seen:
                found.append((seen[combo], action, combo))
            else:
                seen[combo] = action
        return found

    # ---- saved form ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        ordered = {a.id: to_text(self.keys[a.id]) for a in ACTIONS if a.id in self.keys}
        return {"keys": ordered, "push_to_talk": self.push_to_talk}

    @classmethod
    def from_dict(cls, data: object, platform: str = sys.platform) -> tuple[Bindings, list[str]]:
        """Bindings from the saved form, and notes on entries that were dropped (unreadable,
        unknown action, refused, or a combination already taken by an earlier action)."""
        if data is None:
            return cls(), []
        if not isinstance(data, dict):
            return cls(), ["The saved hotkeys could not be read; no hotkeys are set."]
        notes: list[str] = []
        raw = data.get("keys", {})
        if not isinstance(raw, dict):
            notes.append("The saved hotkeys could not be read; no hotkeys are set.")
            raw = {}
        ptt = data.get("push_to_talk", True)
        bindings = cls(push_to_talk=ptt if isinstance(ptt, bool) else True)
        by_order = sorted(raw.items(), key=lambda kv: _action_order(kv[0]))
        for action, text in by_order:
            if action not in ACTION_IDS:
                notes.append(f"Unknown hotkey action '{action}' in the saved settings; ignored.")
                continue
            name = ACTION_IDS[action].label
            try:
                combo = parse(text)
                bindings = bindings.with_key(action, combo, platform)
            except HotkeyError as exc:
                notes.append(f"The hotkey for {name} could not be restored ({exc}); it is cleared.")
        return bindings, notes


def _action_order(action: object) -> int:
    ids = [a.id for a in ACTIONS]
    return ids.index(action) if action in ids else len(ids)


def describe(bindings: Bindings, platform: str = sys.platform) -> Iterable[tuple[Action, str]]:
    """(action, shown combination or '') for every action, in the order of ACTIONS."""
    for a in ACTIONS:
        yield a, label(bindings.get(a.id), platform)
