"""The server's stream table, tokens and protocol checks, without a server."""

from __future__ import annotations

import stat

import pytest

from voicegui.remote import protocol as P
from voicegui.remote.auth import (
    TokenError,
    read_token_file,
    save_token,
    saved_token,
    server_token,
    token_matches,
)
from voicegui.remote.streams import StreamTable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_streams_expire_when_idle_and_end():
    clock = Clock()
    table = StreamTable(max_streams=2, idle_seconds=30.0, clock=clock)
    a, b = table.open("A"), table.open("B")
    assert a != b and len(a) == 32
    with pytest.raises(P.ProtocolError) as busy:
        table.open("C")
    assert busy.value.code == P.BUSY
    clock.now = 20.0
    assert table.get(a) == "A"  # a block keeps A alive
    clock.now = 40.0
    assert table.expire() == 1  # B was idle for 40 s
    with pytest.raises(P.ProtocolError) as gone:
        table.get(b)
    assert gone.value.code == P.UNKNOWN_STREAM
    assert table.get(a) == "A"
    assert table.close(a) and not table.close(a)
    with pytest.raises(P.ProtocolError):
        table.get(a)


def test_token_comparison():
    token = "s" * 43
    assert token_matches(token, token)
    assert not token_matches(token[:-1] + "t", token)
    for bad in (None, 42, b"s" * 43, "", "s" * 10_000):
        assert not token_matches(bad, token)


def test_server_token_file_is_private(tmp_path):
    token, path = server_token(tmp_path / "token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert server_token(path)[0] == token  # kept, not remade
    (tmp_path / "short").write_text("abc")
    with pytest.raises(TokenError):
        read_token_file(tmp_path / "short")
    with pytest.raises(TokenError):
        read_token_file(tmp_path / "missing")


def test_client_tokens_are_kept_per_address():
    save_token("gpu-box:8765", "t" * 40)
    assert saved_token("gpu-box:8765") == "t" * 40
    assert saved_token("other:8765") == ""
    save_token("gpu-box:8765", "")
    assert saved_token("gpu-box:8765") == ""


def test_protocol_checks():
    assert P.parse_address("gpu:9000") == ("gpu", 9000)
    assert P.parse_address("gpu") == ("gpu", P.DEFAULT_PORT)
    assert P.parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("", "gpu:x", "gpu:70000"):
        with pytest.raises(ValueError):
            P.parse_address(bad)
    s = P.StreamSettings.from_json('{"diffusion_steps": 4, "cfg_rate": 0.0}')
    assert (s.diffusion_steps, s.cfg_rate) == (4, 0.0)
    assert P.StreamSettings.from_json(s.to_json()) == s
    for bad in ('{"cfg_rate": "a"}', '{"cfg_rate": NaN}', "[1]", '{"style_from_prompt": 1}'):
        with pytest.raises(P.ProtocolError):
            P.StreamSettings.from_json(bad)
    g = P.block_geometry({"index": 3, "block": 10, "left": 20, "right": 5, "sola_extra": 4}, 100)
    assert (g.window, g.out_samples) == (35, 14)
    with pytest.raises(P.ProtocolError) as err:
        P.block_geometry({"index": 0, "block": 10, "left": 2000, "right": 0, "sola_extra": 0}, 100)
    assert err.value.code == P.TOO_LARGE
