"""TLS: `voicegui serve --tls-cert/--tls-key` with a self-signed certificate, the app's client
given that certificate (the window's certificate field, `bench --tls-ca`), and the clients that
cannot verify the server (or the server that does not speak TLS) refused with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.remote.streaming import RATE, info, remote_voice, windows
from voicegui import cli
from voicegui.remote.client import RemoteError, RemoteSeedVC
from voicegui.remote.probe import probe

pytestmark = pytest.mark.slow


def test_a_client_with_the_certificate_streams_over_tls(tls_voice_server, tls_files, kit_inputs):
    voice = remote_voice(tls_voice_server, ca_file=tls_files["cert"])
    try:
        assert voice._conn is not None and voice._conn.tls
        voice.prepare(kit_inputs["ref_wav_22k"][:RATE], RATE)
        wins = windows(kit_inputs["stream_in_22k"], 2)
        voice.convert(wins[0], info(0))
        out = voice.convert(wins[1], info(1))  # block 0's reply, computed on the server
        assert out.shape == (info(1).block + info(1).sola_extra,)
        assert np.all(np.isfinite(out)) and np.abs(out).max() > 0
        assert voice.received == 1 and voice.late == voice.lost == 0
    finally:
        voice.close()
    result = probe(tls_voice_server.address, tls_voice_server.token, str(tls_files["cert"]))
    assert result["ok"] and result["device"] == "cpu", result


def test_bench_over_tls(tls_voice_server, tls_files, tmp_path, capsys):
    """`voicegui bench --remote ... --tls-ca`: the figures come over the encrypted link."""
    out = tmp_path / "bench.json"
    light = ["--voice", "seedvc", "--block-time", "0.5", "--extra-left", "0.5",
             "--extra-dit-left", "0.2", "--extra-right", "0", "--steps", "2", "--cfg", "0",
             "--max-prompt", "1.0"]  # fmt: skip
    rc = cli.main(
        ["bench", "--remote", tls_voice_server.address, "--seconds", "1.5", "--out", str(out),
         "--token-file", str(tls_voice_server.token_file), "--tls-ca", str(tls_files["cert"]),
         *light]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["server"]["device"] == "cpu"
    assert result["network_round_trip"]["n"] > 0 and result["blocks"] >= 1
    assert result["latency"]["network_ms"] == pytest.approx(result["block_ms"])


def refusal(address: str, token: str, ca) -> str:
    """What the Test button and the voice say when they cannot use the server."""
    result = probe(address, token, None if ca is None else str(ca))
    assert not result["ok"], result
    with pytest.raises(RemoteError) as err:
        RemoteSeedVC(address, token, ca)
    assert str(err.value) == result["error"]  # the same words in the window and the engine
    return result["error"]


def test_clients_that_cannot_use_the_server_are_told_why(
    tls_voice_server, voice_server, tls_files, tmp_path
):
    tls, token = tls_voice_server, tls_voice_server.token
    # no certificate given: the TLS server closes the connection; the message says why
    assert "give its certificate" in refusal(tls.address, token, None)
    # another server's certificate does not verify this one
    assert "does not verify" in refusal(tls.address, token, tls_files["other"])
    # the certificate names 127.0.0.1, not localhost
    text = refusal(f"localhost:{tls.port}", token, tls_files["cert"])
    assert "not issued for 'localhost'" in text, text
    # a certificate given for a server without TLS
    text = refusal(voice_server.address, voice_server.token, tls_files["cert"])
    assert "does not answer with TLS" in text, text
    # a file that is not a certificate (the key), or no file
    assert "is not a PEM certificate" in refusal(tls.address, token, tls_files["key"])
    assert "No such file" in refusal(tls.address, token, tmp_path / "missing.pem")
    # the token is still checked behind TLS
    wrong = probe(tls.address, token[::-1], str(tls_files["cert"]))
    assert not wrong["ok"] and "token" in wrong["error"]
    # and the server goes on serving the clients that verify it
    assert probe(tls.address, token, str(tls_files["cert"]))["ok"]


def test_serve_refuses_tls_files_it_cannot_use_before_loading(tls_files, tmp_path, capsys):
    cert, key, other = (str(tls_files[k]) for k in ("cert", "key", "other"))
    cases = {
        "only a certificate": (["--tls-cert", cert], "needs both"),
        "a key of another certificate": (
            ["--tls-cert", other, "--tls-key", key],
            "the key does not belong to the certificate",
        ),
        "the files swapped": (["--tls-cert", key, "--tls-key", cert], "is not a PEM certificate"),
        "no key file": (["--tls-cert", cert, "--tls-key", str(tmp_path / "k")], "no such file"),
    }
    for name, (args, words) in cases.items():
        # no model folder: a TLS mistake is reported before anything loads
        rc = cli.main(["serve", "--seedvc-dir", str(tmp_path / "no-model"), *args])
        err = capsys.readouterr().err
        assert rc == 2 and words in err, (name, err)
