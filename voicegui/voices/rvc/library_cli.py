"""`voicegui rvc list | import FILE | index NAME FILE | pitch NAME ST | remove NAME`: the voice
library from the command line (the window's voice library does the same)."""

from __future__ import annotations

import argparse
import json

from voicegui.voices.rvc import library
from voicegui.voices.rvc.library import VoiceModel


def describe(m: VoiceModel) -> dict:
    info = m.info
    return {
        "name": m.name,
        "model": str(m.model) if m.model else None,
        "index": str(m.index) if m.index else None,
        "version": info.version if info else "",
        "feature_dim": info.feature_dim if info else 0,
        "sample_rate": info.sample_rate if info else 0,
        "f0": info.f0 if info else None,
        "size": m.size,
        "pitch": m.pitch,
        "warnings": list(info.warnings) if info else [],
        "error": m.error,
    }


def _line(m: VoiceModel) -> str:
    if m.error:
        return f"{m.name}: ERROR {m.error}"
    info = m.info
    assert info is not None
    index = f"index {m.index_info.vectors} vectors" if m.index_info else "no index"
    return (
        f"{m.name}: {info.summary()} · {m.size / 1e6:.1f} MB · {index} · "
        f"default pitch {m.pitch:+g} st"
    )


def _cmd(args: argparse.Namespace) -> int:
    cmd = args.rvc_command
    if cmd == "list":
        models = library.list_models()
        if args.json:
            print(json.dumps([describe(m) for m in models], indent=2, ensure_ascii=False))
        else:
            for m in models:
                print(_line(m))
            if not models:
                print(f"The voice library is empty ({library.library_dir()}).")
        return 0
    if cmd == "import":
        from voicegui.modelhub import _bar

        m = library.import_model(
            args.file, index=args.index, name=args.name, pitch=args.pitch, progress=_bar
        )
        print(_line(m))
        return 0
    if cmd == "index":
        if not args.none and not args.file:
            raise ValueError("give the .index file, or --none to drop the voice's index")
        print(_line(library.set_index(args.name, None if args.none else args.file)))
        return 0
    if cmd == "pitch":
        print(_line(library.set_default_pitch(args.name, args.semitones)))
        return 0
    if cmd == "remove":
        library.remove(args.name)
        print(f"removed {args.name}")
        return 0
    raise ValueError("choose one of: list, import, index, pitch, remove")


def add_rvc_parser(sub) -> None:
    p = sub.add_parser("rvc", help="the RVC voice library: list, import, index, pitch, remove")
    rsub = p.add_subparsers(dest="rvc_command")
    ls = rsub.add_parser("list", help="the voices in the library, with version, rate, f0, size")
    ls.add_argument("--json", action="store_true")
    i = rsub.add_parser("import", help="copy a .pth or .onnx voice (and its .index) in")
    i.add_argument("file")
    i.add_argument("--index", help="its retrieval index (.index)")
    i.add_argument("--name", help="name in the library (default: the file's name)")
    i.add_argument("--pitch", type=float, default=0.0, help="default pitch shift, semitones")
    x = rsub.add_parser("index", help="give a voice its .index (or --none to drop it)")
    x.add_argument("name")
    x.add_argument("file", nargs="?")
    x.add_argument("--none", action="store_true")
    t = rsub.add_parser("pitch", help="set a voice's default pitch shift (semitones)")
    t.add_argument("name")
    t.add_argument("semitones", type=float)
    r = rsub.add_parser("remove", help="delete a voice from the library")
    r.add_argument("name")
    p.set_defaults(func=_cmd)
