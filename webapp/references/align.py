"""Align an uploaded reference performance (MIDI) to its score, in a child process (no Django).

The web app runs `align_reference` in a child process (webapp.childproc) under a time limit, as
for score uploads. It reads the score saved at upload (``parsed.npz``), aligns the MIDI
with render.align.align_midi, encodes the aligned notes (ml.inference.reference_from_aligned)
and writes into OUTDIR:

- ``reference.npz``: ml.inference.save_reference of the encoding (with its score);
- ``report.json``: render.align.AlignmentReport.to_dict();
- ``notes.json``: every performed note as a NOTE dict of the web contract, with the score id
  of the note it was aligned to (``"i": -1`` and an ``x<k>`` id for extra notes), so the
  player can play the reference and light its notes on the engraving;
- ``result.json`` (webapp.childproc): ``{"ok": true}``, ``{"error": reason}`` for a performance
  that does not fit the score, or ``{"crash": text}`` when the aligner itself failed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from render.align import align_midi
from render.score import score_bar_numbers
from webapp.scores.prep import load_parsed


def reference_notes(aligned) -> list[dict]:
    """NOTE dicts of an aligned performance's played notes, in onset order.

    Parameters
    ----------
    aligned : render.performance.AlignedPerformance

    Returns
    -------
    list of dict
        i (score note index or -1), id (score note id or ``x<k>``), pitch, onset, duration,
        velocity, tempo (0: unknown), z ([]), v (0).
    """
    notes = aligned.notes
    score_ids = aligned.score.notes["id"]
    of_perf = np.full(len(notes), -1, np.int64)
    matched = np.flatnonzero(aligned.match_index >= 0)
    of_perf[aligned.match_index[matched]] = matched
    out = []
    for k in np.argsort(notes["onset_sec"], kind="stable"):
        j = int(of_perf[k])
        out.append({"i": j, "id": str(score_ids[j]) if j >= 0 else f"x{k}",
                    "pitch": int(notes["pitch"][k]),
                    "onset": round(float(notes["onset_sec"][k]), 4),
                    "duration": round(max(float(notes["duration_sec"][k]), 0.01), 4),
                    "velocity": int(min(127, max(1, int(notes["velocity"][k])))),
                    "tempo": 0.0, "z": [], "v": 0})
    return out


def align_reference(midi_path: Path, parsed_path: Path, outdir: Path) -> dict:
    """Align, encode and write reference.npz, report.json and notes.json; the report dict.

    Raises
    ------
    render.errors.RenderError
        (AlignmentError, PerformanceError) when the performance cannot be read or does not fit.
    """
    from ml.inference import reference_from_aligned, save_reference  # torch: not in the web process

    score = load_parsed(parsed_path)
    aligned, report = align_midi(score, midi_path)
    ref = reference_from_aligned(score, aligned)
    save_reference(outdir / "reference.npz", ref)
    rep = report.to_dict()
    rep["n_encoded"] = int(len(ref.index))
    first, last = rep.get("first_index"), rep.get("last_index")
    if isinstance(first, int) and isinstance(last, int) and 0 <= first <= last < score.n_notes:
        bars = score_bar_numbers(score.notes)   # the passage in the bars the controls count
        rep["from_bar"], rep["to_bar"] = int(bars[first]), int(bars[last])
    (outdir / "report.json").write_text(json.dumps(rep), encoding="utf-8")
    (outdir / "notes.json").write_text(json.dumps(reference_notes(aligned)), encoding="utf-8")
    return rep
