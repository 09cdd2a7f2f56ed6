"""The hotkey model: parsing and showing combinations, what is refused, the saved form, and the
matcher that turns raw keys into actions."""

from __future__ import annotations

import json

import pytest

from voicegui.hotkeys.bindings import (
    ACTIONS,
    KEYS,
    MODIFIERS,
    Bindings,
    HotkeyError,
    KeyCombo,
    label,
    parse,
    problem,
    to_text,
)
from voicegui.hotkeys.matcher import ComboMatcher
from voicegui.presets import AppState


def combo(text: str) -> KeyCombo:
    return parse(text)


# ---- parse and format ----------------------------------------------------------------------


def test_every_key_with_every_modifier_set_round_trips():
    # all 16 modifier subsets x every key: saved text -> combo -> saved text is the identity
    subsets = [frozenset(m for i, m in enumerate(MODIFIERS) if n >> i & 1) for n in range(16)]
    for key in KEYS:
        for mods in subsets:
            c = KeyCombo(key, mods)
            assert parse(to_text(c)) == c
            assert parse(label(c, "linux")) == c  # what the dialog shows reads back too
            assert parse(label(c, "win32")) == c
            assert parse(label(c, "darwin")) == c


@pytest.mark.parametrize(
    ("text", "saved"),
    [
        ("Ctrl+Alt+M", "ctrl+alt+m"),
        ("alt+CTRL+m", "ctrl+alt+m"),  # any order, any case
        ("Control+Option+F5", "ctrl+alt+f5"),
        ("Cmd+Shift+1", "shift+super+1"),
        ("Win+Pause", "super+pause"),
        ("ctrl+Page Up", "ctrl+page_up"),
        ("ctrl+pgdn", "ctrl+page_down"),
        ("ctrl++", "ctrl+equal"),
        ("ctrl+-", "ctrl+minus"),
        ("Ctrl+`", "ctrl+grave"),
        (" F13 ", "f13"),
    ],
)
def test_parse_reads_what_people_write(text, saved):
    assert to_text(parse(text)) == saved


def test_labels_follow_the_platform():
    c = combo("ctrl+alt+shift+super+f5")
    assert label(c, "linux") == "Ctrl+Alt+Shift+Super+F5"
    assert label(c, "win32") == "Ctrl+Alt+Shift+Win+F5"
    assert label(c, "darwin") == "Control+Option+Shift+Cmd+F5"
    assert label(combo("ctrl+page_up"), "linux") == "Ctrl+Page Up"
    assert label(None) == ""


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("ctrl+", "empty part"),
        ("ctrl+banana", "unknown key 'banana'"),
        ("hyper+m", "unknown modifier 'hyper'"),
        ("ctrl", "a modifier alone"),
        ("ctrl+shift", "a modifier alone"),
        ("ctrl+a+b", "one key"),
    ],
)
def test_parse_refuses_with_a_reason(text, why):
    with pytest.raises(HotkeyError, match=why):
        parse(text)


# ---- what cannot be a hotkey ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["m", "1", "space", "enter", "shift+m", "shift+1", "tab", "up"])
def test_keys_that_type_need_ctrl_alt_or_super(text):
    assert "would fire whenever you type" in problem(combo(text), "linux")


@pytest.mark.parametrize(
    "text", ["f9", "pause", "scroll_lock", "insert", "ctrl+m", "alt+shift+1", "super+space"]
)
def test_keys_that_type_nothing_or_combinations_are_fine(text):
    assert problem(combo(text), "linux") == ""


@pytest.mark.parametrize(
    ("text", "platform", "what"),
    [
        ("ctrl+alt+delete", "linux", "secure attention"),
        ("ctrl+alt+delete", "win32", "secure attention"),
        ("alt+tab", "darwin", "switching windows"),
        ("ctrl+alt+f2", "linux", "text console"),
        ("super+l", "win32", "locking"),
        ("super+tab", "darwin", "switching applications"),
    ],
)
def test_combinations_the_system_keeps_are_refused(text, platform, what):
    assert what in problem(combo(text), platform)


def test_reserved_lists_are_per_platform():
    # Ctrl+Alt+F2 switches consoles on Linux only; Win+L locks Windows only
    assert problem(combo("ctrl+alt+f2"), "win32") == ""
    assert problem(combo("super+l"), "linux") == ""


# ---- conflicts -----------------------------------------------------------------------------


def test_the_same_combination_for_two_actions_is_refused():
    b = Bindings().with_key("mute", combo("ctrl+alt+m"), "linux")
    why = b.check("bypass", combo("Alt+Ctrl+M"), "linux")
    assert "already the hotkey for Mute" in why
    with pytest.raises(HotkeyError, match="already the hotkey for Mute"):
        b.with_key("bypass", combo("ctrl+alt+m"), "linux")
    # giving an action the combination it has is no conflict; clearing frees it for another
    assert b.check("mute", combo("ctrl+alt+m"), "linux") == ""
    freed = b.with_key("mute", None).with_key("bypass", combo("ctrl+alt+m"), "linux")
    assert freed.get("bypass") == combo("ctrl+alt+m") and freed.get("mute") is None


def test_bindings_refuse_what_problem_refuses():
    with pytest.raises(HotkeyError, match="would fire whenever you type"):
        Bindings().with_key("record", combo("r"), "linux")
    assert Bindings().check("no_such_action", combo("f9")).startswith("unknown action")


# ---- saved form ----------------------------------------------------------------------------


def full_bindings() -> Bindings:
    b = Bindings(push_to_talk=False)
    for i, action in enumerate(ACTIONS):
        b = b.with_key(action.id, KeyCombo(f"f{i + 1}", frozenset({"ctrl", "shift"})), "linux")
    return b


def test_saved_form_round_trips_through_the_state_file(tmp_path):
    b = full_bindings()
    state = AppState(tmp_path / "state.json")
    state.update(hotkeys=b.to_dict())
    data = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))["hotkeys"]
    back, notes = Bindings.from_dict(data, "linux")
    assert notes == []
    assert back == b
    assert back.keys == b.keys and back.push_to_talk is False
    assert data["keys"]["push_to_talk"] == "ctrl+shift+f1"  # readable by a person


def test_nothing_saved_gives_no_hotkeys_and_no_note():
    assert Bindings.from_dict(None) == (Bindings(), [])


@pytest.mark.parametrize("data", ["ctrl+m", 42, ["mute", "f9"], {"keys": "f9"}])
def test_an_unreadable_entry_gives_no_hotkeys_and_a_note(data):
    b, notes = Bindings.from_dict(data, "linux")
    assert b.keys == {}
    assert len(notes) == 1 and "could not be read" in notes[0]


def test_corrupt_entries_are_dropped_one_by_one_and_the_rest_kept():
    data = {
        "keys": {
            "mute": "ctrl+alt+m",
            "bypass": "ctrl+banana",  # unknown key
            "record": 7,  # not text
            "preset_3": "m",  # would fire while typing
            "teleport": "f9",  # unknown action
            "preset_1": "ctrl+alt+m",  # taken by mute (mute comes first in ACTIONS)
            "push_to_talk": "f9",
        },
        "push_to_talk": "yes",  # not a bool: the default
    }
    b, notes = Bindings.from_dict(data, "linux")
    assert b.keys == {"mute": combo("ctrl+alt+m"), "push_to_talk": combo("f9")}
    assert b.push_to_talk is True
    text = "\n".join(notes)
    assert len(notes) == 5, text
    for why in ("Bypass", "unknown key 'banana'", "Record start / stop", "Preset 3",
                "'teleport'", "already the hotkey for Mute"):  # fmt: skip
        assert why in text


def test_conflicts_lists_actions_sharing_a_combination():
    b = Bindings({"mute": combo("f9"), "bypass": combo("f9"), "record": combo("f10")})
    assert b.conflicts() == [("mute", "bypass", combo("f9"))]
    assert full_bindings().conflicts() == []


# ---- the matcher -----------------------------------------------------------------------------


def matcher(**keys: str) -> ComboMatcher:
    return ComboMatcher(Bindings({a: combo(t) for a, t in keys.items()}))


def test_a_combination_fires_on_its_key_with_exactly_its_modifiers():
    m = matcher(mute="ctrl+alt+m", bypass="ctrl+m")
    assert m.press("ctrl_l") == [] and m.press("alt_r") == []
    assert m.press("m") == [("mute", True)]
    assert m.release("m") == [("mute", False)]
    assert m.release("alt_r") == []
    assert m.press("m") == [("bypass", True)]  # Ctrl alone is held now
    m.release("m")
    m.release("ctrl_l")
    assert m.press("m") == []  # no modifier: nothing (M is typing)


def test_toggles_do_not_fire_with_extra_modifiers_but_push_to_talk_does():
    m = matcher(record="f5", push_to_talk="f9")
    m.press("ctrl_r")  # Ctrl+F5 in a browser must not start a recording
    assert m.press("f5") == []
    m.release("f5")
    m.press("shift_l")  # running (Shift) and crouching (Ctrl) in a game while talking
    assert m.press("f9") == [("push_to_talk", True)]
    m.release("shift_l")
    m.release("ctrl_r")
    assert m.release("f9") == [("push_to_talk", False)]


def test_auto_repeat_fires_once_and_release_ends_what_was_held():
    m = matcher(push_to_talk="ctrl+f9", mute="ctrl+f10")
    m.press("ctrl")
    assert m.press("f9") == [("push_to_talk", True)]
    assert [m.press("f9") for _ in range(20)] == [[]] * 20  # the key repeats while held
    m.release("ctrl")  # the modifier goes first: the key still holds
    assert m.press("f10") == []  # Ctrl is up now: F10 alone is no hotkey
    assert m.release("f9") == [("push_to_talk", False)]
    assert m.release("f9") == []


def test_left_and_right_modifiers_count_as_one_until_both_are_up():
    m = matcher(mute="ctrl+f10")
    m.press("ctrl_l")
    m.press("ctrl_r")
    m.release("ctrl_l")
    assert m.press("f10") == [("mute", True)]
    m.release("f10")
    m.release("ctrl_r")
    assert m.press("f10") == []


def test_release_all_ends_a_held_push_to_talk():
    m = matcher(push_to_talk="f9", mute="f10")
    m.press("f9")
    m.press("f10")
    assert sorted(m.release_all()) == [("mute", False), ("push_to_talk", False)]
    assert m.release("f9") == []


# ---- the key tables of the Windows and macOS listeners ---------------------------------------


def test_every_key_has_a_windows_virtual_key_and_macos_says_which_it_lacks():
    from voicegui.hotkeys.pynput_backend import MACOS_VK, WINDOWS_VK, PynputBackend

    assert set(KEYS) <= set(WINDOWS_VK.values())
    assert PynputBackend("Windows").check(combo("ctrl+f24")) == ""
    mac = PynputBackend("macOS")
    lacking = [k for k in KEYS if k not in MACOS_VK.values()]
    assert "f21" in lacking and "a" not in lacking
    for key in lacking:
        assert "macOS keyboards have no" in mac.check(KeyCombo(key, frozenset({"ctrl"})))
    assert mac.check(combo("super+f5")) == ""
    # every side-specific modifier token names a modifier the matcher knows
    from voicegui.hotkeys.matcher import modifier_of

    for table in (WINDOWS_VK, MACOS_VK):
        for token in table.values():
            assert token in KEYS or modifier_of(token), token


def test_media_keys_on_macos_are_not_read_as_letters():
    from voicegui.hotkeys.pynput_backend import vk_token

    class Code:  # a pynput KeyCode as pynput's macOS side builds it for a media key
        vk, _is_media = 0x10, True  # NX_KEYTYPE_PLAY is 16, which is kVK_ANSI_Y

    assert vk_token(Code(), "macOS") is None
    Code._is_media = False
    assert vk_token(Code(), "macOS") == "y"
