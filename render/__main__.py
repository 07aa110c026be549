"""Command line: ``python -m render {inspect,roundtrip,deadpan,humanize} ...``.

    python -m render inspect SCORE                  JSON summary of a score
    python -m render roundtrip FILE.match[.xz]      JSON: encode/decode error of a performance
    python -m render deadpan SCORE -o OUT.mid [--csv OUT.csv] [--wav OUT.wav] [--ogg OUT.ogg]
    python -m render humanize SCORE -o OUT.mid [--seed N] [--amount X] [--csv ...] [--wav ...]

Bad input (an unreadable score or match file, an unwritable output) prints one line naming
the file and the problem on stderr and exits with status 2; a missing FluidSynth or soundfont
exits with 1. Set RENDER_DEBUG=1 to see tracebacks of unexpected errors.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from render.errors import RenderError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output, missing input folder ...
        where = exc.filename or ""
        print(f"error: {Path(where).name + ': ' if where else ''}{exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except Exception as exc:
        from render.export import AudioError

        if os.environ.get("RENDER_DEBUG"):
            raise
        kind = "" if isinstance(exc, AudioError) else f"unexpected {type(exc).__name__}: "
        print(f"error: {kind}{' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m render", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inspect scores, check the encoding round trip, render baseline performances.",
        epilog="\n".join(__doc__.split("\n")[1:]))
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="JSON summary of a score file")
    p.add_argument("file", type=Path)
    p.add_argument("--no-unfold", action="store_true", help="keep repeats as written")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("roundtrip", help="encode and decode a match file's performance")
    p.add_argument("file", type=Path, help=".match file (or .match.xz)")
    p.set_defaults(func=cmd_roundtrip)

    for name, helptext in (("deadpan", "play the score as written"),
                           ("humanize", "rule-based expressive performance")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", type=Path)
        p.add_argument("-o", "--output", type=Path, required=True, help="performance MIDI file")
        p.add_argument("--csv", type=Path, help="per-note CSV")
        p.add_argument("--wav", type=Path, help="audio, WAV")
        p.add_argument("--ogg", type=Path, help="audio, Ogg Vorbis")
        p.add_argument("--tempo", type=float, help="base tempo, quarter notes per minute")
        if name == "humanize":
            p.add_argument("--seed", type=int, default=0, help="seed of the random jitter")
            p.add_argument("--amount", type=float, default=1.0, help="scale of every rule")
        p.set_defaults(func=cmd_render, baseline=name)
    return ap


def cmd_inspect(args) -> int:
    from render.loaders import load_score

    s = load_score(args.file, unfold=not args.no_unfold)
    n = s.notes
    summary = {
        "file": str(args.file), "format": s.format, "title": s.title, "notes": s.n_notes,
        "parts": s.n_parts, "beats": round(s.duration_beat, 4),
        "grace_notes": int(n["is_grace"].sum()), "staves": sorted(set(n["staff"].tolist())),
        "pitch_range": [int(n["pitch"].min()), int(n["pitch"].max())],
        "unfolded": not args.no_unfold,
        "time_signatures": s.time_signatures(), "key_signatures": s.key_signatures(),
        "tempo": {"written_bpm": s.written_tempo_bpm,
                  "marks": [{"onset_beat": float(m["onset_beat"]), "bpm": float(m["bpm"]),
                             "text": str(m["text"])} for m in s.tempo_marks]},
        "dynamics": [{"onset_beat": float(m["onset_beat"]), "velocity": int(m["velocity"]),
                      "text": str(m["text"])} for m in s.dynamics_marks],
        "warnings": s.warnings,
    }
    _print_json(summary)
    return 0


def cmd_roundtrip(args) -> int:
    from render.encoding import roundtrip_report
    from render.errors import PerformanceError

    path = args.file
    if not path.is_file():
        raise PerformanceError("no such file", path=path)
    if path.suffix == ".xz":
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            plain = Path(tmp) / path.stem
            try:
                plain.write_bytes(lzma.decompress(path.read_bytes()))
            except lzma.LZMAError as exc:
                raise PerformanceError(f"not a valid .xz file ({exc})", path=path) from exc
            report = roundtrip_report(plain)
        report["file"] = str(path)
    else:
        report = roundtrip_report(path)
    _print_json(report)
    return 0


def cmd_render(args) -> int:
    from render.baselines import deadpan, humanize
    from render.export import render_audio, save_csv, save_midi
    from render.loaders import load_score

    score = load_score(args.file)
    if args.baseline == "deadpan":
        perf = deadpan(score, tempo_bpm=args.tempo)
    else:
        perf = humanize(score, seed=args.seed, tempo_bpm=args.tempo, amount=args.amount)
    outputs = {"midi": str(save_midi(perf, args.output))}
    if args.csv:
        outputs["csv"] = str(save_csv(perf, args.csv))
    for fmt in ("wav", "ogg"):
        if getattr(args, fmt):
            outputs[fmt] = str(render_audio(perf, getattr(args, fmt), fmt=fmt))
    end = float(np.max(perf["onset_sec"] + perf["duration_sec"]))
    _print_json({"file": str(args.file), "baseline": args.baseline, "notes": len(perf),
                 "duration_sec": round(end, 3), "warnings": score.warnings, "outputs": outputs})
    return 0


def _print_json(obj) -> None:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    print(json.dumps(obj, indent=2, default=default))


if __name__ == "__main__":
    sys.exit(main())
