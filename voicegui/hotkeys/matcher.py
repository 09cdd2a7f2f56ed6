"""Turns raw key presses and releases into hotkey actions (for listeners that see every key).

Keys arrive as tokens: a key name of bindings.KEYS, or a modifier ("ctrl", "ctrl_l", "ctrl_r",
"alt_r", "super_l", ...; left and right count as the same modifier). A key press fires the
action whose combination is exactly the modifiers held plus that key. Push-to-talk also fires
with extra modifiers held, so that holding Shift to run or Ctrl to crouch in a game does not stop
the voice. Auto-repeated presses of a key already down are ignored; releasing the key ends a
held action, whatever happened to the modifiers meanwhile.
"""

from __future__ import annotations

from voicegui.hotkeys.bindings import MODIFIERS, Bindings, KeyCombo

MOMENTARY_EXTRA_MODIFIERS = ("push_to_talk",)


def modifier_of(token: str) -> str | None:
    base = token.split("_", 1)[0]
    return base if base in MODIFIERS and token in (base, f"{base}_l", f"{base}_r") else None


class ComboMatcher:
    """Not thread-safe: fed by one listener thread."""

    def __init__(self, bindings: Bindings) -> None:
        self.bindings = bindings
        self._mods: set[str] = set()  # modifier tokens down (side-specific)
        self._down: dict[str, str | None] = {}  # key down -> the action it fired (or None)

    @property
    def modifiers(self) -> frozenset[str]:
        return frozenset(m for m in (modifier_of(t) for t in self._mods) if m)

    def press(self, token: str) -> list[tuple[str, bool]]:
        """A key went down: [(action, True)] when it fires one."""
        if modifier_of(token):
            self._mods.add(token)
            return []
        if token in self._down:
            return []  # auto-repeat
        action = self._match(token)
        self._down[token] = action
        return [(action, True)] if action else []

    def release(self, token: str) -> list[tuple[str, bool]]:
        """A key went up: [(action, False)] when it held one."""
        if modifier_of(token):
            self._mods.discard(token)
            return []
        action = self._down.pop(token, None)
        return [(action, False)] if action else []

    def release_all(self) -> list[tuple[str, bool]]:
        """Forget every key (the listener stopped or lost track): end what was held."""
        ended = [(a, False) for a in self._down.values() if a]
        self._down.clear()
        self._mods.clear()
        return ended

    def _match(self, key: str) -> str | None:
        mods = self.modifiers
        try:
            exact = self.bindings.action_for(KeyCombo(key, mods))
        except ValueError:
            return None  # a key the model does not know
        if exact is not None:
            return exact
        for action in MOMENTARY_EXTRA_MODIFIERS:
            combo = self.bindings.get(action)
            if combo is not None and combo.key == key and combo.modifiers <= mods:
                return action
        return None
