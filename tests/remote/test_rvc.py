"""RVC on the server: the remote voice gives what the local voice gives; a voice file the server
lacks is sent once (with progress) and found by its hash afterwards; a voice of the server's own
library is found by name; files that are wrong, damaged or unsafe are refused and nothing of
them is kept; streams keep their own state.

Tolerance of remote against local: the server runs the app's own RVC stream code with the
same checkpoints, torch build and one thread, so it computes the same float32 operations; what
two processes may still order differently (the numpy build that makes tables, the kernels a
process picks) is the rounding of the sums inside the networks. For the stream that is the
content encoder's (HuBERT, over the block's 16 kHz window) plus the synthesizer's (prior
encoder, flow, decoder over the window's frames), each derived from the loaded network
(tests/rvc/front_rounding.py, tests/rvc/synth_rounding.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tests.rvc.front_rounding import hubert_fan_in_sum
from tests.rvc.installed import kit_model
from tests.rvc.model_files import unsafe_pth
from tests.rvc.synth_rounding import assert_rel, rounding_rtol, rtol_audio
from tests.voice_server import SERVER_LIBRARY_VOICE
from voicegui.remote import protocol as P
from voicegui.voices.base import BlockInfo

pytestmark = pytest.mark.slow
N = 5
PITCH = 3.0


@pytest.fixture
def rvc_server(server, rvc_home):
    if not server.rvc:
        pytest.skip("the RVC kit is not here: the test server serves Seed-VC only")
    return server


def geometry(rate: int) -> tuple[int, int, int, int]:
    """The engine's own layout (block, left, right, SOLA margin) for 0.1 s blocks, 0.5 s of
    left context, 20 ms crossfade and right context."""
    from voicegui.engine.processor import geometry as engine_geometry
    from voicegui.settings import EngineSettings

    e = EngineSettings(
        block_time=0.1, extra_left_time=0.5, crossfade_time=0.02, extra_right_time=0.02
    )
    g = engine_geometry(e, rate, rate)
    return g.block, g.left, g.right, g.crossfade + g.search


def windows(rate: int, n: int = N) -> list[np.ndarray]:
    from voicegui.speech_signal import synthetic_speech

    block, left, right, _ = geometry(rate)
    x = synthetic_speech((left + right + (n + 1) * block) / rate + 0.1, rate)
    size = left + block + right
    return [np.ascontiguousarray(x[k * block : k * block + size], np.float32) for k in range(n)]


def info(rate: int, k: int) -> BlockInfo:
    block, left, right, extra = geometry(rate)
    return BlockInfo(k, block, left, right, extra)


def local_voice(model: Path, pitch: float = PITCH, index: Path | None = None, rate=0.0):
    from voicegui.settings import VoiceSettings
    from voicegui.voices.rvc.voice import build_rvc_voice

    settings = VoiceSettings(
        voice="rvc",
        model=str(model),
        index=str(index or ""),
        index_rate=rate,
        f0_method="rmvpe",
        backend="torch",
        device="cpu",
        precision="fp32",
        pitch=pitch,
    )
    return build_rvc_voice(settings, threads=1)


def remote(server, model: str, pitch: float = PITCH, index_rate: float = 0.0, **kw):
    from voicegui.remote.rvc_client import RemoteRvc

    # patience of many blocks: these tests are about values, not about a loaded CPU's timing
    voice = RemoteRvc(server.address, server.token, model=model, patience=200.0, **kw)
    voice.update({"pitch": pitch, "index_rate": index_rate})
    return voice


def run(voice, wins: list[np.ndarray], rate: int) -> list[np.ndarray]:
    return [voice.convert(w, info(rate, k)) for k, w in enumerate(wins)]


_RTOL: dict[tuple[int, int], float] = {}


def stream_rtol(local) -> float:
    """The content encoder's and the synthesizer's rounding for one block (module doc), for
    the voice's kind (version and rate); computed once per kind."""
    import torch

    from voicegui.voices.rvc.hubert import load_hubert
    from voicegui.voices.rvc.shared_weights import installed_files

    rate = local.sample_rate
    v1 = local.stream.synth.config.feature_dim == 256  # v1 reads layer 9, projected
    if (v1, rate) not in _RTOL:
        block, left, right, _ = geometry(rate)
        frames = -(-(left + block + right) // (rate // 100))
        shape = load_hubert(installed_files().hubert, torch.device("cpu")).shape
        layers = 9 if v1 else shape.layers
        content = rounding_rtol(hubert_fan_in_sum(shape, frames * 160, layers, v1))
        _RTOL[(v1, rate)] = content + rtol_audio(local.stream.synth, frames)
    return _RTOL[(v1, rate)]


def renamed_copy(model: Path, folder: Path, tag: str) -> Path:
    """The same voice in a file of other bytes (a metadata field changed): a file the server
    has never seen."""
    import torch

    obj = torch.load(model, map_location="cpu", weights_only=True)
    obj["info"] = f"{obj.get('info', '')} {tag}"
    out = folder / f"{model.stem}-{tag}.pth"
    torch.save(obj, out)
    return out


def test_remote_rvc_equals_local_and_a_file_is_sent_once(rvc_server, rvc_assets, tmp_path):
    model = renamed_copy(kit_model(rvc_assets, "v2"), tmp_path, "sent")
    local = local_voice(model)
    rate = local.sample_rate
    wins = windows(rate)
    want = run(local, wins, rate)
    rtol = stream_rtol(local)
    steps: list[tuple[int, int]] = []
    first = remote(rvc_server, str(model), progress=lambda stage, i, n: steps.append((i, n)))
    try:
        assert first.uploaded == 1, "a file the server never saw is sent"
        assert steps and steps[-1][0] == steps[-1][1], f"progress ends at the whole file: {steps}"
        assert first.configure(48000) == rate
        got = run(first, wins, rate)
    finally:
        first.close()
    np.testing.assert_array_equal(got[0], 0.0)  # before the first reply: silence
    for k in range(1, N):
        assert_rel(got[k], want[k - 1], rtol, f"block {k - 1}")
    worst = max(np.abs(got[k] - want[k - 1]).max() / np.abs(want[k - 1]).max() for k in range(1, N))
    print(f"\nremote RVC vs local: {worst:.2g} of the peak (tolerance {rtol:.2g})")
    again = remote(rvc_server, str(model))
    try:
        assert again.uploaded == 0, "the server holds it now: found by its hash"
        got_again = run(again, wins[:2], rate)
    finally:
        again.close()
    assert_rel(got_again[1], want[0], rtol, "the held file")
    # negative control: one semitone off, and equality fails
    other = remote(rvc_server, str(model), pitch=PITCH + 1)
    try:
        shifted = run(other, wins[:2], rate)[1]
    finally:
        other.close()
    with pytest.raises(AssertionError):
        assert_rel(shifted, want[0], rtol, "another pitch")


def test_the_index_goes_with_the_voice(rvc_server, rvc_assets, tmp_path):
    """A voice with its index: both reach the server and the blend is the local one's."""
    from tests.rvc.installed import kit_index

    model = renamed_copy(kit_model(rvc_assets, "v2"), tmp_path, "indexed")
    index, rate_ = kit_index(rvc_assets), 0.75
    local = local_voice(model, index=index, rate=rate_)
    rate = local.sample_rate
    wins = windows(rate, 3)
    want = run(local, wins, rate)
    voice = remote(rvc_server, str(model), index=str(index), index_rate=rate_)
    try:
        assert voice.uploaded >= 1 and voice.choice.index is not None
        got = run(voice, wins, rate)
    finally:
        voice.close()
    # the blend adds a float32 weighted mean of 8 neighbours (a few roundings of values the
    # size of the features) to the stream's rounding; the neighbours themselves are the same
    # on both sides unless two distances tie within the features' rounding
    rtol = stream_rtol(local)
    for k in range(1, 3):
        assert_rel(got[k], want[k - 1], rtol, f"block {k - 1}")
    plain = run(local_voice(model), wins[:1], rate)[0]  # negative control: no index
    with pytest.raises(AssertionError):
        assert_rel(got[1], plain, rtol, "without the index")


def test_the_servers_own_voice_by_name(rvc_server, rvc_assets):
    """The app does not hold this voice: its name reaches the server's library."""
    local = local_voice(kit_model(rvc_assets, "v1"))
    rate = local.sample_rate
    wins = windows(rate, 3)
    want = run(local, wins, rate)
    voice = remote(rvc_server, SERVER_LIBRARY_VOICE)
    try:
        assert voice.uploaded == 0
        assert voice.configure(48000) == rate
        got = run(voice, wins, rate)
    finally:
        voice.close()
    rtol = stream_rtol(local)
    for k in range(1, 3):
        assert_rel(got[k], want[k - 1], rtol, f"block {k - 1}")


def test_an_unknown_name_says_what_the_server_has(rvc_server):
    from voicegui.remote.client import RemoteError

    with pytest.raises(RemoteError, match=SERVER_LIBRARY_VOICE):
        remote(rvc_server, "no such voice")


def _upload(conn, data: bytes, sha: str, offset: int = 0, total: int | None = None, **kw):
    padded = data + b"\0" * (-len(data) % 4)
    params = {
        "kind": "model",
        "sha256": sha,
        "suffix": ".pth",
        "offset": offset,
        "length": len(data),
        "total": len(data) if total is None else total,
        **kw,
    }
    reply = conn.send("rvc", "upload", params, np.frombuffer(padded, np.float32))
    return reply.wait(30)


def _start_status(conn, sha: str) -> dict:
    params = {"model": sha, "model_name": "x", "f0": "rmvpe", "seed": 1, "settings": "{}"}
    return conn.send("rvc", "start", params).wait(30)


def test_wrong_damaged_or_unsafe_files_are_refused_and_not_kept(rvc_server, tmp_path):
    import hashlib

    from voicegui.remote.client import Connection

    conn = Connection(rvc_server.address, rvc_server.token)
    try:
        # bytes that do not match the hash they claim
        data = b"not the file you think" * 100
        claimed = hashlib.sha256(b"something else").hexdigest()
        status = _upload(conn, data, claimed)
        assert not status["ok"] and "sha256" in status["error"], status
        assert _start_status(conn, claimed)["code"] == P.NEED_MODEL
        # a chunk that does not continue what came before
        sha = hashlib.sha256(data).hexdigest()
        status = _upload(conn, data[:64], sha, offset=64, total=len(data))
        assert not status["ok"] and "offset 0" in status["error"], status
        # a pickle that would run a command when loaded: read, refused, deleted
        marker = tmp_path / "ran"
        raw = unsafe_pth(tmp_path / "evil.pth", marker).read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        status = _upload(conn, raw, sha)
        assert not status["ok"] and status["code"] == P.BAD_REQUEST, status
        assert "system" in status["error"], status["error"]  # names what it refused
        assert not marker.exists()
        assert _start_status(conn, sha)["code"] == P.NEED_MODEL  # not kept
        # a suffix the server does not run, a hash that is not one
        status = _upload(conn, raw, sha, suffix=".exe")
        assert not status["ok"] and status["code"] == P.BAD_REQUEST
        status = _upload(conn, raw, "../../etc/passwd")
        assert not status["ok"] and status["code"] == P.BAD_REQUEST
        # the server goes on serving
        assert conn.call("rvc", "info", {})["ok"]
    finally:
        conn.close()


def test_two_rvc_streams_keep_their_own_state(rvc_server, rvc_assets):
    """Two streams of one voice at different pitches, blocks interleaved: each gives what its
    own local voice gives."""
    model = kit_model(rvc_assets, "v2")
    pitches = (0.0, 5.0)
    locals_ = [local_voice(model, p) for p in pitches]
    rate = locals_[0].sample_rate
    wins = windows(rate, 4)
    alone = [run(v, wins, rate) for v in locals_]
    voices = [remote(rvc_server, str(model), pitch=p) for p in pitches]
    outs: list[list[np.ndarray]] = [[], []]
    barrier = threading.Barrier(2)

    def go(i: int) -> None:
        for k, w in enumerate(wins):
            barrier.wait()
            outs[i].append(voices[i].convert(w, info(rate, k)))

    try:
        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        for v in voices:
            v.close()
    rtol = stream_rtol(locals_[0])
    for i in range(2):
        assert len(outs[i]) == len(wins)
        for k in range(1, len(wins)):
            assert_rel(outs[i][k], alone[i][k - 1], rtol, f"stream {i} block {k - 1}")
    with pytest.raises(AssertionError):  # negative control: the other stream's output
        assert_rel(outs[0][2], alone[1][1], rtol, "stream 0 against stream 1")


def test_a_live_pitch_change_reaches_the_servers_stream(rvc_server, rvc_assets):
    """The pitch moves between blocks, as the window's slider moves it: the server's stream
    changes at the same block as the local voice, without a new stream."""
    model = kit_model(rvc_assets, "v2")
    local = local_voice(model)
    rate = local.sample_rate
    wins = windows(rate, 4)
    voice = remote(rvc_server, str(model))
    want, got = [], []
    try:
        stream = voice._stream
        for k, w in enumerate(wins):
            if k == 2:
                local.update({"pitch": PITCH + 4})
                voice.update({"pitch": PITCH + 4})
            want.append(local.convert(w, info(rate, k)))
            got.append(voice.convert(w, info(rate, k)))
        assert voice._stream == stream  # the same stream, its state kept
    finally:
        voice.close()
    rtol = stream_rtol(local)
    for k in range(1, 4):
        assert_rel(got[k], want[k - 1], rtol, f"block {k - 1}")
    old = run(local_voice(model), wins[:3], rate)[2]  # negative control: block 2, old pitch
    with pytest.raises(AssertionError):
        assert_rel(got[3], old, rtol, "the old pitch")


def test_an_onnx_voice_file_runs_on_the_server(rvc_server, rvc_assets, tmp_path):
    """A voice exported to ONNX (voicegui's layout) is sent and run by onnxruntime there, as
    here: the same graph, the same onnxruntime build and one thread on both sides."""
    import torch

    from voicegui.voices.rvc.checkpoints import load_voice_model
    from voicegui.voices.rvc.onnx_export import export_synthesizer

    pth = renamed_copy(kit_model(rvc_assets, "v2"), tmp_path, "onnx")
    synth = load_voice_model(pth, torch.device("cpu"))[0]
    model = export_synthesizer(synth, tmp_path / f"{pth.stem}.onnx", "voicegui")
    local = local_voice(model)
    rate = local.sample_rate
    wins = windows(rate, 3)
    want = run(local, wins, rate)
    voice = remote(rvc_server, str(model))
    try:
        assert voice.uploaded == 1
        got = run(voice, wins, rate)
    finally:
        voice.close()
    rtol = stream_rtol(local_voice(pth))
    for k in range(1, 3):
        assert_rel(got[k], want[k - 1], rtol, f"block {k - 1}")
    other = run(local_voice(model, pitch=PITCH + 1), wins[:1], rate)[0]  # negative control
    with pytest.raises(AssertionError):
        assert_rel(got[1], other, rtol, "another pitch")


def test_a_server_not_serving_rvc_says_so(tls_voice_server, tls_files, rvc_home, rvc_assets):
    """The TLS server of the run serves Seed-VC only: asked for RVC, the app says what to do."""
    from voicegui.remote.client import RemoteError
    from voicegui.remote.rvc_client import RemoteRvc

    srv = tls_voice_server
    with pytest.raises(RemoteError, match="does not serve this voice.*--voices"):
        RemoteRvc(srv.address, srv.token, tls_files["cert"], model=str(kit_model(rvc_assets)))
