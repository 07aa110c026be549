"""Parse an uploaded score once, in a child process with a time limit (no Django here).

The web app runs `prepare` in a child process (webapp.childproc: forked from a server that has
partitura and Verovio imported already, killable at the time limit); the same from a shell:
``python -m webapp.scores.prep FILE OUTDIR --name NAME --max-notes N --max-bytes B`` reads FILE with
render.loaders.load_score (unfolded as the renderer plays it), engraves it with Verovio and
writes into OUTDIR: ``parsed.npz`` (the Score arrays), ``score.mei`` and ``meta.json``
(title, format, n_notes, duration_beat, written_tempo_bpm, warnings, notemap, coverage).
It exits 0 on success, 2 with ``{"error": ...}`` on stdout for a refused score.

`load_parsed` turns ``parsed.npz`` + the meta fields back into a render.score.Score.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from render.errors import ScoreError
from render.loaders import load_score
from render.readers import quiet
from render.score import Score
from webapp.scores.engraving import engrave

log = logging.getLogger(__name__)


def prepare(path: Path, outdir: Path, *, name: str, max_notes: int, max_bytes: int) -> dict:
    """Parse and engrave one score file; write parsed.npz, score.mei and meta.json to outdir.

    Raises
    ------
    render.errors.ScoreError
        For every score that cannot be used, with the user-facing reason.
    """
    score = load_score(path, unfold=True, max_notes=max_notes, max_bytes=max_bytes, name=name)
    ids = score.notes["id"]
    if len(set(ids.tolist())) != len(ids):
        raise ScoreError("the score's notes have no distinct ids", path=name)
    try:
        with quiet():  # Verovio logs on stderr: the command line prints one line
            mei, notemap, coverage = engrave(
                path, score.format, score.notes,
                written_notes=lambda: load_score(path, unfold=False, max_notes=max_notes,
                                                 max_bytes=max_bytes, name=name).notes)
    except Exception as exc:  # Verovio failing is not the user's fault: play without engraving
        mei, notemap, coverage = "", {}, 0.0
        score.warnings.append(f"the score could not be engraved ({exc}); it can still be played")
    np.savez(outdir / "parsed.npz", notes=score.notes, tempo_marks=score.tempo_marks,
             dynamics_marks=score.dynamics_marks, marks=score.marks)
    (outdir / "score.mei").write_text(mei, encoding="utf-8")
    meta = {
        "title": (score.title or Path(name).stem)[:200], "format": score.format,
        "n_notes": int(score.n_notes), "duration_beat": float(score.duration_beat),
        "written_tempo_bpm": score.written_tempo_bpm, "n_parts": int(score.n_parts),
        "warnings": list(score.warnings), "notemap": notemap, "coverage": float(coverage),
    }
    (outdir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return meta


def load_parsed(path: str | Path, *, title: str = "", fmt: str = "", source: str = ""):
    """The render.score.Score saved by `prepare` (no re-parsing of the score file)."""
    with np.load(path, allow_pickle=False) as z:
        # Scores parsed before markings were read (model v1) have none: they render without.
        return Score(notes=z["notes"], tempo_marks=z["tempo_marks"], dynamics_marks=z["dynamics_marks"],
                     marks=z["marks"] if "marks" in z.files else None, title=title, format=fmt, source=source)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--name", default="")
    ap.add_argument("--max-notes", type=int, default=50_000)
    ap.add_argument("--max-bytes", type=int, default=20_000_000)
    args = ap.parse_args(argv)
    out = sys.stdout
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            meta = prepare(args.file, args.outdir, name=args.name or args.file.name,
                           max_notes=args.max_notes, max_bytes=args.max_bytes)
    except ScoreError as exc:
        out.write(json.dumps({"error": exc.reason}) + "\n")
        return 2
    out.write(json.dumps({"ok": True, "n_notes": meta["n_notes"],
                          "coverage": meta["coverage"]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
