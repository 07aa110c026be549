"""The listening tests' design, without Django: conditions, questions, passages and scoring.

Passages are chosen by *score position* (beats) so that every condition of an item covers the
same music: the length in seconds is measured on the deadpan rendering (the written tempo), and
each condition then plays the notes whose score onsets lie in [start_beat, end_beat).
"""
from __future__ import annotations

import numpy as np

CONDITIONS = {
    "deadpan": "Deadpan",
    "humanizer": "Rule-based humanizer",
    "model": "Model (z from the prior)",
    "human": "Human (oracle)",
}
MOS_QUESTIONS = {
    "naturalness": {"label": "How natural is this performance?", "min": 1, "max": 5,
                    "anchors": {1: "unnatural", 3: "moderately natural", 5: "most natural"}},
    "expressiveness": {"label": "How expressive is this performance?", "min": 1, "max": 5,
                       "anchors": {1: "unexpressive", 3: "contains some expression",
                                   5: "most expressive"}},
}
AB_QUESTIONS = {
    "relation": {"label": "Is the change from A1 to A2 like the change from the first B to the "
                          "second B (same), or like the second B to the first (reversed)?",
                 "choices": {1: "same", -1: "reversed"}},
    "confidence": {"label": "How confident are you?", "min": 0, "max": 2,
                   "anchors": {0: "cannot tell", 1: "somewhat confident",
                               2: "strongly confident"}},
}
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+", "no answer")
TRAINING_BANDS = ("none", "1-2", "3-5", "6-10", "over 10", "no answer")
LEAD_IN_SEC = 0.05
MAX_TAIL_SEC = 2.0  # notes sound at most this long after the passage's last onset


def questions(kind: str) -> dict:
    """The questions of a survey kind ("mos" or "ab"), keyed by name."""
    return MOS_QUESTIONS if kind == "mos" else AB_QUESTIONS


def valid_answer(kind: str, answers: object) -> dict[str, int]:
    """Check one item's answers; returns {question: int}.

    Raises
    ------
    ValueError
        With a message for the participant: a missing or unknown question, a value that is not
        an integer or is outside its scale.
    """
    qs = questions(kind)
    if not isinstance(answers, dict):
        raise ValueError("the answers must be an object of question: value")
    unknown = sorted(set(answers) - set(qs))
    missing = sorted(set(qs) - set(answers))
    if unknown:
        raise ValueError(f"unknown question(s): {', '.join(map(str, unknown))}")
    if missing:
        raise ValueError(f"please answer every question (missing: {', '.join(missing)})")
    out = {}
    for name, q in qs.items():
        v = answers[name]
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ValueError(f"{name}: the answer must be a whole number")
        try:
            v = int(v)
        except ValueError:
            raise ValueError(f"{name}: the answer must be a whole number") from None
        allowed = q["choices"] if "choices" in q else range(q["min"], q["max"] + 1)
        if v not in allowed:
            lo, hi = (min(allowed), max(allowed))
            raise ValueError(f"{name}: {v} is outside the scale ({lo} to {hi})")
        out[name] = v
    return out


def ab_signed_score(relation: int, confidence: int, b_reversed: bool) -> int:
    """The paper's signed confidence: +confidence for a right guess, -confidence for a wrong one.

    The right answer is "same" (+1) when B was played in the order B1, B2, and "reversed" (-1)
    when B2 was played first.
    """
    right = 1 if not b_reversed else -1
    return int(confidence) if int(relation) == right else -int(confidence)


def _end_beat(onset_beat, onset_sec, start_beat, segment_sec, piece_end_beat):
    t0 = onset_sec[np.searchsorted(onset_beat, start_beat)]
    later = np.flatnonzero((onset_sec >= t0 + segment_sec) & (onset_beat > start_beat))
    return float(onset_beat[later[0]]) if len(later) else float(piece_end_beat)


def _starts(onset_beat, onset_sec, bar_onsets, segment_sec):
    """Bar starts (with a note on or after them) from which ``segment_sec`` of music remains."""
    cands = np.unique(bar_onsets)
    cands = cands[cands >= onset_beat[0]]
    if len(cands) == 0:
        cands = onset_beat[:1]
    idx = np.searchsorted(onset_beat, cands)
    ok = idx < len(onset_beat)
    cands, idx = cands[ok], idx[ok]
    room = onset_sec[-1] - onset_sec[idx] >= segment_sec * 0.9
    return cands[room] if room.any() else cands[:1]


def passage(onset_beat, onset_sec, bar_onsets, *, segment_sec: float, rng: np.random.Generator,
            start_beat: float | None = None, piece_end_beat: float | None = None
            ) -> tuple[float, float]:
    """A passage of about ``segment_sec`` seconds (at the written tempo), as score beats.

    Parameters
    ----------
    onset_beat, onset_sec : array, shape (N,)
        Score onsets of the notes (sorted) and their deadpan onsets in seconds.
    bar_onsets : array
        Onsets of the bars (random starts are on a bar line).
    start_beat : float, optional
        Start by hand; snapped forward to the next note onset. Default: a random bar start.

    Returns
    -------
    (start_beat, end_beat)
        Notes with start_beat <= onset_beat < end_beat belong to the passage.
    """
    onset_beat, onset_sec = np.asarray(onset_beat, float), np.asarray(onset_sec, float)
    end = float(piece_end_beat if piece_end_beat is not None else onset_beat[-1] + 1.0)
    if start_beat is None:
        cands = _starts(onset_beat, onset_sec, np.asarray(bar_onsets, float), segment_sec)
        start = float(rng.choice(cands))
    else:
        if start_beat > onset_beat[-1] or start_beat < 0:
            raise ValueError(f"start beat {start_beat:g} is outside the score "
                             f"(0 to {onset_beat[-1]:g})")
        start = float(onset_beat[np.searchsorted(onset_beat, start_beat - 1e-9)])
    return start, _end_beat(onset_beat, onset_sec, start, segment_sec, end)


def two_passages(onset_beat, onset_sec, bar_onsets, *, segment_sec: float,
                 rng: np.random.Generator, piece_end_beat: float | None = None):
    """Two non-overlapping passages A and B (paper 4.2), each as (start_beat, end_beat).

    Raises
    ------
    ValueError
        When the piece is too short for two passages of this length.
    """
    onset_beat, onset_sec = np.asarray(onset_beat, float), np.asarray(onset_sec, float)
    end = float(piece_end_beat if piece_end_beat is not None else onset_beat[-1] + 1.0)
    cands = _starts(onset_beat, onset_sec, np.asarray(bar_onsets, float), segment_sec)
    spans = [(float(s), _end_beat(onset_beat, onset_sec, float(s), segment_sec, end))
             for s in cands]
    pairs = [(a, b) for a in spans for b in spans if b[0] >= a[1] or a[0] >= b[1]]
    if not pairs:
        raise ValueError(f"the piece is too short for two separate passages of "
                         f"{segment_sec:g} s")
    a, b = pairs[int(rng.integers(len(pairs)))]
    return a, b


def slice_rendered(notes: np.ndarray, onset_beat: np.ndarray, start_beat: float,
                   end_beat: float) -> np.ndarray:
    """The rendered notes of a passage (``notes[i]`` plays score note i), starting at
    `LEAD_IN_SEC`, none longer than `MAX_TAIL_SEC` past the last onset; ``notes`` has
    onset_sec, duration_sec, pitch, velocity."""
    keep = (onset_beat >= start_beat - 1e-9) & (onset_beat < end_beat - 1e-9)
    return _rebase(notes[keep].copy())


def _rebase(out: np.ndarray) -> np.ndarray:
    """Start at LEAD_IN_SEC; cut notes at MAX_TAIL_SEC after the last onset (a long final
    chord or a slow rendition does not make one clip much longer than the others)."""
    if len(out):
        out["onset_sec"] = out["onset_sec"] - out["onset_sec"].min() + LEAD_IN_SEC
        end = out["onset_sec"].max() + MAX_TAIL_SEC
        out["duration_sec"] = np.minimum(out["duration_sec"], end - out["onset_sec"])
    return out


def slice_performed(perf_notes: np.ndarray, match_index: np.ndarray, onset_beat: np.ndarray,
                    start_beat: float, end_beat: float) -> np.ndarray:
    """The performed notes of a passage of a human performance: everything played from the
    first to the last onset of the passage's aligned notes (insertions included)."""
    keep = (onset_beat >= start_beat - 1e-9) & (onset_beat < end_beat - 1e-9)
    idx = match_index[keep]
    idx = idx[idx >= 0]
    if len(idx) == 0:
        return perf_notes[:0].copy()
    t = perf_notes["onset_sec"][idx]
    sel = (perf_notes["onset_sec"] >= t.min() - 1e-9) & (perf_notes["onset_sec"] <= t.max() + 1e-9)
    return _rebase(perf_notes[sel].copy())
