"""Command line: no arguments starts the GUI; `devices`, `convert`, `bench`, `models`, `serve`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from voicegui import __version__
from voicegui.settings import F0_METHODS, Settings, SettingsError, with_changes

# CLI flag -> (settings part, field)
TUNING = {
    "block_time": ("engine", "block_time"),
    "crossfade": ("engine", "crossfade_time"),
    "extra_left": ("engine", "extra_left_time"),
    "extra_dit_left": ("engine", "extra_dit_left_time"),
    "extra_right": ("engine", "extra_right_time"),
    "input_gain": ("engine", "input_gain_db"),
    "output_gain": ("engine", "output_gain_db"),
    "gate_db": ("engine", "gate_threshold_db"),
    "gate_hold": ("engine", "gate_hold_time"),
    "safety_buffer": ("engine", "buffer_margin_time"),
    "denoise": ("engine", "denoise"),
    "denoise_mix": ("engine", "denoise_mix"),
    "voice": ("voice", "voice"),
    "pitch": ("voice", "pitch"),
    "formant": ("voice", "formant"),
    "steps": ("voice", "diffusion_steps"),
    "cfg": ("voice", "cfg_rate"),
    "max_prompt": ("voice", "max_prompt_time"),
    "reference": ("voice", "reference"),
    "model": ("voice", "model"),
    "index": ("voice", "index"),
    "f0": ("voice", "f0_method"),
    "index_rate": ("voice", "index_rate"),
    "protect": ("voice", "protect"),
    "backend": ("voice", "backend"),
    "precision": ("voice", "precision"),
    "compute_device": ("voice", "device"),
}


def _add_tuning(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("voice and engine settings (default: the preset's, or built-in)")
    g.add_argument("--preset", help="start from a saved preset (by name)")
    g.add_argument("--voice", choices=["dsp", "passthrough", "seedvc", "rvc"])
    g.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help="RVC voice: a name from the voice library (`voicegui rvc list`) or a .pth/.onnx file",
    )
    g.add_argument(
        "--index", metavar="PATH", help="RVC retrieval index (default: the library voice's own)"
    )
    g.add_argument("--f0", choices=list(F0_METHODS), help="RVC pitch estimator (default rmvpe)")
    g.add_argument(
        "--index-rate", type=float, help="RVC: share of index features, 0..1 (0 = no index)"
    )
    g.add_argument(
        "--protect", type=float, help="RVC: protection of voiceless sounds, 0..0.5 (0.5 = off)"
    )
    g.add_argument("--pitch", type=float, help="semitones, -24..24 (cents resolution)")
    g.add_argument("--formant", type=float, help="semitones of envelope shift, -12..12")
    g.add_argument("--block-time", type=float, help="seconds per block")
    g.add_argument("--crossfade", type=float, help="seconds of SOLA crossfade")
    g.add_argument("--extra-left", type=float, help="seconds of left context")
    g.add_argument("--extra-dit-left", type=float, help="seconds of DiT left context (Seed-VC)")
    g.add_argument("--extra-right", type=float, help="seconds of right context (lookahead)")
    g.add_argument("--steps", type=int, help="diffusion steps (Seed-VC)")
    g.add_argument("--cfg", type=float, help="CFG rate (Seed-VC)")
    g.add_argument("--max-prompt", type=float, help="seconds of reference used as prompt")
    g.add_argument("--reference", help="reference clip for zero-shot voices")
    g.add_argument("--backend", choices=["torch", "onnx"])
    g.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "bf16", "int8"],
        help="numeric precision (auto: torch bf16 on CPUs with native bf16, else fp32, fp16 on "
        "CUDA; onnx int8 on CPU, fp16 on GPU)",
    )
    g.add_argument("--compute-device", help="auto, cpu, cuda or mps")
    g.add_argument("--input-gain", type=float, help="dB")
    g.add_argument("--output-gain", type=float, help="dB")
    g.add_argument("--gate-db", type=float, help="silence gate threshold in dB (-90 = off)")
    g.add_argument("--gate-hold", type=float, help="seconds the gate stays open after speech")
    g.add_argument(
        "--safety-buffer", type=float, help="seconds of extra output buffering (adds latency)"
    )
    g.add_argument(
        "--denoise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="RNNoise input noise suppression before the gate and the voice (adds 20 ms)",
    )
    g.add_argument(
        "--denoise-mix", type=float, help="share of the suppressed signal, 0..1 (default 1)"
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    base = Settings()
    if getattr(args, "preset", None):
        from voicegui.presets import PresetStore

        base = PresetStore().load(args.preset).settings
    parts: dict[str, dict] = {}
    for flag, (part, name) in TUNING.items():
        value = getattr(args, flag, None)
        if value is not None:
            parts.setdefault(part, {})[name] = value
    settings = with_changes(base, **parts) if parts else base.validated()
    if settings.voice.voice == "rvc":
        # a voice chosen here brings its default pitch unless --pitch says otherwise
        chosen_here = getattr(args, "model", None) is not None
        own_pitch = chosen_here and getattr(args, "pitch", None) is None
        settings = _resolved_rvc(settings, library_pitch=own_pitch)
    return settings


def _resolved_rvc(settings: Settings, library_pitch: bool = False) -> Settings:
    """Check the RVC model and index now (a clear error listing the library when unknown) and
    keep a path absolute, so the audio host finds it whatever its working folder.
    ``library_pitch``: a library voice takes its default pitch (as choosing it in the window
    does)."""
    from voicegui.voices.rvc.library import get, resolve

    v = settings.voice
    found = resolve(v.model, v.index)
    changes = {}
    if Path(v.model).expanduser() == found.model:  # given as a path, not a library name
        changes["model"] = str(found.model.resolve())
    elif library_pitch:
        changes["pitch"] = get(found.name).pitch
    if v.index:
        changes["index"] = str(Path(v.index).expanduser().resolve())
    return with_changes(settings, voice=changes) if changes else settings


def cmd_devices(args: argparse.Namespace) -> int:
    from voicegui.audio import devices

    kind = "input" if args.inputs else "output" if args.outputs else None
    if args.json:
        print(json.dumps(devices.as_json(kind), indent=2))
    else:
        print(devices.describe(kind))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from voicegui.engine.offline import convert_file
    from voicegui.voices.registry import create_voice

    settings = settings_from_args(args)
    voice = create_voice(settings.voice)
    if settings.voice.reference:
        from voicegui.engine.offline import read_audio, to_mono

        data, sr = read_audio(settings.voice.reference)
        voice.prepare(to_mono(data), sr)
    report = convert_file(args.input, args.output, voice, settings)
    voice.close()
    print(json.dumps(report, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from voicegui import bench

    settings = settings_from_args(args)
    if args.remote:
        result = _bench_remote(settings, args)
    elif args.gui:
        if not args.jack:
            raise ValueError("--gui runs on JACK: add --jack")
        from voicegui.bench_gui import bench_gui

        result = bench_gui(
            settings, args.seconds, load=args.load, period=args.period, monitor=args.monitor,
            switch_to=args.switch_to,
        )  # fmt: skip
    elif args.loopback:
        from voicegui.live import live_settings

        if not (args.input and args.output):
            raise ValueError("--loopback needs --input and --output (HOSTAPI:NAME)")
        settings = live_settings(settings, args.input, args.output, None)
        result = bench.bench_loopback(settings, args.seconds, args.clicks, args.tone)
        returned = result.pop("returned")
        if args.save_return:
            import soundfile as sf

            sf.write(args.save_return, returned, result["sample_rate"], subtype="FLOAT")
            result["returned_file"] = str(Path(args.save_return).resolve())
    elif args.jack:
        result = bench.bench_jack(settings, args.seconds, period=args.period)
    else:
        result = bench.bench_offline(settings, args.seconds, args.rate)
    if args.virtual_mic:
        result["virtual_mic"] = bench.bench_virtual_mic(settings)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from voicegui.remote.auth import server_token
    from voicegui.remote.server import MIN_IDLE_SECONDS, check_tls_files, serve
    from voicegui.voices.catalog import REMOTE_VOICES

    voices = list(dict.fromkeys(v.strip() for v in args.voices.split(",") if v.strip()))
    unknown = sorted(set(voices) - set(REMOTE_VOICES))
    if unknown or not voices:
        raise ValueError(
            f"voices that can be served: {', '.join(REMOTE_VOICES)} "
            f"(not {', '.join(unknown) or '-'})"
        )
    tls_cert = Path(args.tls_cert) if args.tls_cert else None
    tls_key = Path(args.tls_key) if args.tls_key else None
    check_tls_files(tls_cert, tls_key)  # before the model loads: a mistake is said at once
    if not args.idle_seconds >= MIN_IDLE_SECONDS:
        raise ValueError(f"--idle-seconds must be at least {MIN_IDLE_SECONDS:g}")
    token, token_file = server_token(Path(args.token_file) if args.token_file else None)
    services = {name: _load_service(name, args) for name in voices}
    scheme = "with TLS" if args.tls_cert else "without TLS"
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"voicegui serve: listening on {args.host}, reachable from other machines", flush=True
        )

    def ready() -> None:
        info = next(iter(services.values())).info()
        rvc = services.get("rvc")
        held = f" ({len(rvc.files.names())} RVC voices in the library)" if rvc else ""
        print(
            f"voicegui serve: ready on {args.host}:{args.port} ({scheme}); voices: "
            f"{', '.join(services)}{held}; {info['provider']} on {info['device']}; "
            f"token in {token_file}",
            flush=True,
        )

    serve(
        services,
        token,
        host=args.host,
        port=args.port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        batch_delay_us=int(args.batch_delay_ms * 1000),
        on_ready=ready,
    )
    return 0


def _load_service(name: str, args: argparse.Namespace):
    """One served voice, loaded before the server starts listening."""
    if name == "seedvc":
        from voicegui.remote.service import SeedVCService, seedvc_files

        return SeedVCService.load(
            seedvc_files(Path(args.seedvc_dir) if args.seedvc_dir else None),
            device=args.compute_device,
            precision=args.precision,
            batching=not args.no_batching,
            idle_seconds=args.idle_seconds,
        )
    from voicegui import paths
    from voicegui.remote.rvc_service import RvcService

    methods = tuple(m.strip() for m in args.rvc_f0.split(",") if m.strip())
    return RvcService.load(
        paths.data_dir() / "served-rvc-voices",
        device=args.compute_device,
        precision=args.precision,
        idle_seconds=args.idle_seconds,
        f0_methods=methods,
    )


def _bench_remote(settings: Settings, args: argparse.Namespace) -> dict:
    from voicegui.remote.auth import read_token_file, saved_token
    from voicegui.remote.bench import bench_remote

    token = read_token_file(Path(args.token_file)) if args.token_file else saved_token(args.remote)
    if not token:
        raise ValueError(f"no token for {args.remote}: give --token-file (the server's token)")
    return bench_remote(
        settings, args.remote, token, args.seconds, streams=args.streams, ca_file=args.tls_ca
    )


def cmd_live(args: argparse.Namespace) -> int:
    from voicegui.live import live_settings, run_live

    settings = live_settings(
        settings_from_args(args), args.input, args.output, args.monitor, args.virtual_mic
    )
    return run_live(settings, args.seconds, record=args.record, record_dry=args.record_dry)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voicegui", description="Real-time voice changer.")
    p.add_argument("--version", action="version", version=f"voicegui {__version__}")
    p.add_argument(
        "--smoke",
        type=float,
        metavar="SECONDS",
        help="start the GUI, run for SECONDS, exit (checks startup)",
    )
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("devices", help="list host APIs and audio devices")
    d.add_argument("--json", action="store_true")
    d.add_argument("--inputs", action="store_true", help="input devices only")
    d.add_argument("--outputs", action="store_true", help="output devices only")
    d.set_defaults(func=cmd_devices)

    c = sub.add_parser("convert", help="convert a file through the real-time engine")
    c.add_argument("input")
    c.add_argument("output")
    _add_tuning(c)
    c.set_defaults(func=cmd_convert)

    lv = sub.add_parser("live", help="run the voice changer without the window (Ctrl-C stops)")
    lv.add_argument("--input", help="HOSTAPI:NAME of the microphone (default: the system's)")
    lv.add_argument("--output", help="HOSTAPI:NAME of the output")
    lv.add_argument("--monitor", help="HOSTAPI:NAME of a second output hearing the same voice")
    lv.add_argument(
        "--virtual-mic",
        action="store_true",
        help="send the voice to apps: on Linux a virtual microphone for the run (removed on exit); "
        "on Windows/macOS an installed virtual cable (VB-CABLE, BlackHole, ...) as the output",
    )
    lv.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    lv.add_argument("--record", metavar="FILE", help="record the voice to FILE (.wav or .flac)")
    lv.add_argument(
        "--record-dry", action="store_true", help="with --record: the dry input to FILE-dry too"
    )
    _add_tuning(lv)
    lv.set_defaults(func=cmd_live)

    b = sub.add_parser("bench", help="measure compute, RTF and latency (JSON)")
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--rate", type=int, default=48000, help="device sample rate (offline)")
    b.add_argument(
        "--jack",
        action="store_true",
        help="run real streams on JACK with the output looped back to the input",
    )
    b.add_argument(
        "--gui",
        action="store_true",
        help="with --jack: the app as users run it (window plotting, audio host process)",
    )
    b.add_argument(
        "--load", type=int, default=0, help="with --gui: busy processes competing for the CPUs"
    )
    b.add_argument(
        "--period", type=int, default=256, help="JACK period in frames if a server is started"
    )
    b.add_argument("--monitor", action="store_true", help="with --gui: monitor output on too")
    b.add_argument(
        "--switch-to",
        metavar="VOICE",
        help="with --gui: choose VOICE 2 s in, as a user does while talking, and count what the "
        "current voice suffers while it loads (--seconds: the longest the load may take)",
    )
    b.add_argument(
        "--virtual-mic",
        action="store_true",
        help="also measure the latency the virtual microphone (Send to apps, Linux) adds",
    )
    b.add_argument(
        "--remote",
        metavar="HOST:PORT",
        help="Seed-VC on a `voicegui serve` server: network round trip, server compute, end to end",
    )
    b.add_argument("--token-file", help="with --remote: the server's token file")
    b.add_argument("--tls-ca", help="with --remote: the server's certificate (TLS)")
    b.add_argument(
        "--streams", type=int, default=1, help="with --remote: concurrent streams on one clock"
    )
    b.add_argument(
        "--loopback",
        action="store_true",
        help="real devices whose output returns to the input outside the app (a loopback "
        "cable, a virtual microphone): clicks time the round trip, a tone checks the pitch",
    )
    b.add_argument("--input", help="with --loopback: HOSTAPI:NAME of the input")
    b.add_argument("--output", help="with --loopback: HOSTAPI:NAME of the output")
    b.add_argument("--clicks", type=int, default=5, help="with --loopback: clicks to time")
    b.add_argument(
        "--tone", type=float, default=220.0, help="with --loopback: tone in Hz (0: none)"
    )
    b.add_argument(
        "--save-return", metavar="WAV", help="with --loopback: save what came back to WAV"
    )
    b.add_argument("--out", help="also write the JSON to this file")
    _add_tuning(b)
    b.set_defaults(func=cmd_bench)

    _add_serve_parser(sub)
    try:
        from voicegui.modelhub import add_models_parser
    except ImportError:
        pass
    else:
        add_models_parser(sub)
    from voicegui.voices.rvc.library_cli import add_rvc_parser

    add_rvc_parser(sub)
    return p


def _add_serve_parser(sub) -> None:
    from voicegui.remote.protocol import DEFAULT_PORT, IDLE_SECONDS

    sv = sub.add_parser(
        "serve",
        help="serve the neural voices to other machines (NVIDIA Triton; needs voicegui[serve])",
    )
    sv.add_argument(
        "--voices",
        default="seedvc",
        help="comma-separated voices to serve: seedvc, rvc (RVC: the shared weights from "
        "`voicegui models download rvc`, the voices of `voicegui rvc import` and those the "
        "apps send)",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    sv.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port")
    sv.add_argument(
        "--token-file",
        help="file holding the access token (made when missing; default: server-token in the "
        "config folder)",
    )
    sv.add_argument("--tls-cert", help="PEM certificate: serve gRPC over TLS")
    sv.add_argument("--tls-key", help="PEM private key of --tls-cert")
    sv.add_argument("--seedvc-dir", help="Seed-VC model folder (default: the installed model)")
    sv.add_argument(
        "--rvc-f0",
        default="rmvpe",
        help="RVC pitch estimators loaded at start (others load when a stream asks)",
    )
    sv.add_argument("--compute-device", default="auto", help="auto, cpu or cuda")
    sv.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16", "int8"])
    sv.add_argument(
        "--batch-delay-ms",
        type=float,
        default=2.0,
        help="how long a block waits for other streams' blocks to batch with",
    )
    sv.add_argument("--no-batching", action="store_true", help="run every block alone")
    sv.add_argument(
        "--idle-seconds",
        type=float,
        default=IDLE_SECONDS,
        help="drop a stream whose app has not been heard from for this long (the app keeps its "
        "streams alive while its user is silent)",
    )
    sv.set_defaults(func=cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen app starting its audio host process
    args = build_parser().parse_args(argv)
    if args.command is None:
        from voicegui.ui.app import run_app

        return run_app(smoke_seconds=args.smoke)
    try:
        return int(args.func(args) or 0)
    except (SettingsError, ValueError, LookupError, RuntimeError, OSError, ImportError) as exc:
        print(f"voicegui {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
