"""Wrong or missing tokens, malformed and oversized requests are refused one by one, and the
server goes on serving the others."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from tests.remote.streaming import BLOCK, LEFT, RATE, RIGHT, SOLA_EXTRA, remote_voice, windows
from voicegui.remote import protocol as P

pytestmark = pytest.mark.slow


def raw(server, params: dict, audio: np.ndarray | None = None, dtype: str = "FP32"):
    """One plain Triton request, as any gRPC client can send it."""
    import tritonclient.grpc as grpcclient

    data = np.zeros((1, 1), np.float32) if audio is None else audio
    client = grpcclient.InferenceServerClient(server.address)
    try:
        inp = grpcclient.InferInput(P.AUDIO, list(data.shape), dtype)
        inp.set_data_from_numpy(data.astype({"FP32": np.float32, "FP64": np.float64}[dtype]))
        result = client.infer(P.model_name("seedvc"), [inp], parameters=params)
        return P.read_status(result.as_numpy(P.STATUS))
    finally:
        client.close()


def geometry(**over) -> dict:
    g = {"index": 0, "block": BLOCK, "left": LEFT, "right": RIGHT, "sola_extra": SOLA_EXTRA}
    return {**g, **over}


def test_token_is_required_and_checked(server):
    assert raw(server, {"op": "info"})["code"] == P.UNAUTHORIZED
    token = server.token
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")  # same length, last char differs
    for bad in (wrong, "", token + "x", "x" * 10_000):
        assert raw(server, {"op": "info", "token": bad})["code"] == P.UNAUTHORIZED
    assert raw(server, {"op": "info", "token": token})["ok"]
    from voicegui.remote.client import RemoteError, RemoteSeedVC

    with pytest.raises(RemoteError) as err:
        RemoteSeedVC(server.address, wrong)
    assert err.value.code == P.UNAUTHORIZED and "token" in str(err.value)


def test_malformed_and_oversized_requests_are_refused(server, kit_inputs):
    t = {"token": server.token}
    win = windows(kit_inputs["stream_in_22k"], 1)[0][None]
    most = int(P.MAX_WINDOW_SECONDS * RATE)
    stranger = secrets.token_hex(16)
    cases = {
        "no op": ({**t}, None, P.BAD_REQUEST),
        "unknown op": ({**t, "op": "reset_all"}, None, P.BAD_REQUEST),
        "unknown stream": ({**t, "op": "block", "stream": stranger, **geometry()}, win, None),
        "window over the limit": (
            {**t, "op": "block", "stream": stranger, **geometry(left=most)},
            np.zeros((1, most + BLOCK + RIGHT), np.float32),
            P.TOO_LARGE,
        ),
        "negative block": ({**t, "op": "block", "stream": stranger, **geometry(block=-1)}, win,
                           P.BAD_REQUEST),
        "index not a number": ({**t, "op": "block", "stream": stranger, "index": "0",
                                **{k: v for k, v in geometry().items() if k != "index"}}, win,
                               P.BAD_REQUEST),
        "settings not JSON": (
            {**t, "op": "start", "sr": RATE, "ref_hash": "00", "seed": 1, "settings": "{"},
            None,
            P.BAD_REQUEST,
        ),
        "steps out of range": (
            {**t, "op": "start", "sr": RATE, "ref_hash": "00", "seed": 1,
             "settings": '{"diffusion_steps": 1000}'},
            None,
            P.BAD_REQUEST,
        ),
        "reference over the limit": (
            {**t, "op": "start", "sr": RATE, "ref_hash": "00", "seed": 1, "settings": "{}",
             "with_reference": True},
            np.zeros((1, P.MAX_REFERENCE_SAMPLES + 1), np.float32),
            P.TOO_LARGE,
        ),
        "reference not matching its hash": (
            {**t, "op": "start", "sr": RATE, "ref_hash": "00", "seed": 1, "settings": "{}",
             "with_reference": True},
            np.ones((1, RATE), np.float32) * 0.1,
            P.BAD_REQUEST,
        ),
        "reference the server lacks": (
            {**t, "op": "start", "sr": RATE, "ref_hash": "00", "seed": 1, "settings": "{}"},
            None,
            P.NEED_REFERENCE,
        ),
        "huge parameter": ({**t, "op": "end", "stream": "x" * (P.MAX_PARAM_CHARS + 1)}, None,
                           P.TOO_LARGE),
    }  # fmt: skip
    for name, (params, audio, code) in cases.items():
        status = raw(server, params, audio)
        assert not status["ok"], name
        assert status["code"] == (code or P.UNKNOWN_STREAM), (name, status)
    # what Triton itself refuses (wrong type, no batch dimension) is an error, not a crash
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException):
        raw(server, {**t, "op": "info"}, np.zeros((1, 4)), dtype="FP64")
    with pytest.raises(InferenceServerException):
        raw(server, {**t, "op": "info"}, np.zeros(4, np.float32))
    # ... and the server goes on serving
    assert raw(server, {**t, "op": "info"})["ok"]


def test_a_stream_cannot_touch_another(server, kit_inputs):
    wins = windows(kit_inputs["stream_in_22k"], 3)
    a = remote_voice(server)
    try:
        a.prepare(kit_inputs["ref_wav_22k"][:RATE], RATE)
        a.convert(wins[0], _info(0))
        t = {"token": server.token}
        # another client knows the server's token but not the stream's id: it cannot end it,
        # nor send blocks into it; a malformed window in the same batch fails alone
        assert raw(server, {**t, "op": "end", "stream": secrets.token_hex(16)})["ended"] is False
        bad = np.full((1, len(wins[1])), np.nan, np.float32)
        status = raw(server, {**t, "op": "block", "stream": a._stream, **geometry(index=1)}, bad)
        assert status["code"] == P.BAD_REQUEST
        out = a.convert(wins[1], _info(1))
        assert out.shape == (BLOCK + SOLA_EXTRA,) and np.abs(out).max() > 0
        assert a.lost == 0 and a.late == 0
    finally:
        a.close()


def _info(k: int):
    from tests.remote.streaming import info

    return info(k)
