"""Aligned performances: a score, the notes a pianist played, and the note-to-note alignment.

The match files of ../shared/data carry all three (partitura's format). Score note ids in
match files carry a repeat-pass suffix (``n12-1``); the score built here keeps those ids, so
a performance of an unfolded score links to the notes by id.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render.errors import PerformanceError
from render.score import Score, score_from_partitura

PERF_NOTE_DTYPE = np.dtype([
    ("id", "U32"),
    ("pitch", "i2"),
    ("onset_sec", "f8"),
    ("duration_sec", "f8"),     # key down to key up, seconds (pedal not applied)
    ("velocity", "i2"),
])
PEDAL_DTYPE = np.dtype([("time_sec", "f8"), ("number", "i2"), ("value", "i2")])  # CC 64 sustain, 67 soft


@dataclass
class AlignedPerformance:
    """A performance aligned to its score.

    Parameters
    ----------
    score : Score
        The score as performed (repeats unfolded as the pianist played them).
    notes : np.ndarray
        Performed notes, PERF_NOTE_DTYPE, shape (P,), sorted by onset.
    match_index : np.ndarray
        int64, shape (N,): for each score note (in ``score.notes`` order) the index into
        ``notes`` of the performed note aligned to it, or -1 (deleted / not played).
    pedal : np.ndarray
        PEDAL_DTYPE events (sustain CC64 and soft CC67), sorted by time.
    """

    score: Score
    notes: np.ndarray
    match_index: np.ndarray
    pedal: np.ndarray = field(default_factory=lambda: np.zeros(0, PEDAL_DTYPE))
    n_insertions: int = 0
    source: str = ""

    def __post_init__(self):
        if self.match_index.shape != (self.score.n_notes,):
            raise ValueError("match_index must have one entry per score note")
        if np.any(self.match_index >= len(self.notes)):
            raise ValueError("match_index points past the performed notes")

    @property
    def matched(self) -> np.ndarray:
        """Boolean mask over score notes that were played, shape (N,)."""
        return self.match_index >= 0

    def aligned_notes(self) -> np.ndarray:
        """Performed note per score note, PERF_NOTE_DTYPE, shape (N,); unmatched rows are zero."""
        out = np.zeros(self.score.n_notes, PERF_NOTE_DTYPE)
        m = self.matched
        out[m] = self.notes[self.match_index[m]]
        return out


def _pedal_events(performed_part) -> np.ndarray:
    rows = [(c["time"], c["number"], c["value"]) for c in performed_part.controls
            if c["number"] in (64, 67)]
    arr = np.array(rows, PEDAL_DTYPE) if rows else np.zeros(0, PEDAL_DTYPE)
    return np.sort(arr, order="time_sec")


def aligned_from_partitura(performance, alignment, score, *, source: str = "") -> AlignedPerformance:
    """Build an `AlignedPerformance` from partitura's (performance, alignment, score) triple."""
    sc = score_from_partitura(score, fmt="match", source=source, unfold=False)
    pp = performance.performedparts[0] if hasattr(performance, "performedparts") else performance
    pna = pp.note_array()
    if len(pna) == 0:
        raise PerformanceError("the performance has no notes", path=source or None)
    notes = np.zeros(len(pna), PERF_NOTE_DTYPE)
    for f in ("id", "pitch", "onset_sec", "duration_sec", "velocity"):
        notes[f] = pna[f]
    notes = notes[np.argsort(notes["onset_sec"], kind="stable")]
    perf_pos = {nid: i for i, nid in enumerate(notes["id"])}
    score_pos = {nid: i for i, nid in enumerate(sc.notes["id"])}
    match_index = np.full(sc.n_notes, -1, np.int64)
    n_ins = 0
    for a in alignment:
        if a["label"] == "match":
            si, pi = score_pos.get(a["score_id"]), perf_pos.get(a["performance_id"])
            if si is not None and pi is not None:
                match_index[si] = pi
        elif a["label"] == "insertion":
            n_ins += 1
    if not (match_index >= 0).any():
        raise PerformanceError("no performed note is aligned to the score", path=source or None)
    return AlignedPerformance(score=sc, notes=notes, match_index=match_index,
                              pedal=_pedal_events(pp), n_insertions=n_ins, source=str(source))


def load_aligned(match_path: str | Path) -> AlignedPerformance:
    """Load a match file (score, performance and alignment).

    Raises
    ------
    PerformanceError
        When the file cannot be read or holds no aligned notes.
    """
    import partitura as pt

    path = Path(match_path)
    if not path.is_file() or path.stat().st_size == 0:
        raise PerformanceError("file is missing or empty", path=path)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            perf, alignment, score = pt.load_match(str(path), create_score=True)
    except PerformanceError:
        raise
    except Exception as exc:
        raise PerformanceError(f"not a readable match file ({type(exc).__name__}: {exc})", path=path) from exc
    return aligned_from_partitura(perf, alignment, score, source=str(path))


def save_aligned_npz(perf: AlignedPerformance, path: str | Path) -> None:
    """Write an aligned performance's arrays to ``path`` (.npz): a parsed match file, reloaded
    by `load_aligned_npz` in milliseconds instead of partitura's seconds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    sc = perf.score
    np.savez_compressed(tmp, score_notes=sc.notes, tempo_marks=sc.tempo_marks, dynamics_marks=sc.dynamics_marks,
                        notes=perf.notes, match_index=perf.match_index, pedal=perf.pedal,
                        n_insertions=np.int64(perf.n_insertions), source=np.str_(perf.source))
    import os
    os.replace(tmp, path)


def load_aligned_npz(path: str | Path) -> AlignedPerformance:
    """Inverse of `save_aligned_npz`."""
    with np.load(path) as z:
        score = Score(notes=z["score_notes"], tempo_marks=z["tempo_marks"], dynamics_marks=z["dynamics_marks"],
                      format="match", source=str(z["source"]))
        return AlignedPerformance(score=score, notes=z["notes"], match_index=z["match_index"], pedal=z["pedal"],
                                  n_insertions=int(z["n_insertions"]), source=str(z["source"]))
