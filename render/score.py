"""The score as the rest of the project sees it: one sorted note array plus markings.

Units: a *beat* is a quarter note everywhere in this project (``onset_beat``, ``duration_beat``,
``tempo_bpm`` in quarter notes per minute), whatever the time signature says, so that the
paper's "1/100 beat" quantities have one meaning across pieces.

The note array is sorted by onset, then pitch (the paper's note order n). Note ids are
partitura's: for MusicXML the ``id`` of each note, so they equal the ``snote`` ids of match
files; after unfolding repeats every id carries a pass suffix (``n12-1``, ``n12-2``) like the
match files' ids.
"""
from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field

import numpy as np

from render.errors import ScoreError

NOTE_DTYPE = np.dtype([
    ("id", "U32"),
    ("pitch", "i2"),                # MIDI note number
    ("onset_beat", "f8"),           # quarter notes from the start
    ("duration_beat", "f8"),        # quarter notes; 0 for grace notes
    ("staff", "i2"),
    ("voice", "i2"),
    ("is_grace", "?"),
    ("bar_onset_beat", "f8"),       # onset of the note's bar, quarter notes
    ("bar_duration_beat", "f8"),    # nominal length of that bar, quarter notes
    ("ts_num", "i2"),
    ("ts_den", "i2"),
    ("ks_fifths", "i2"),            # -7..7
    ("ks_mode", "i2"),              # 1 major, -1 minor, 0 unknown
    ("tempo_bpm", "f4"),            # written tempo in force (quarters/min); nan if none
    ("velocity_written", "i2"),     # from the dynamics marking in force; 0 if none
])

# Conventional MIDI velocities of dynamics markings (as notation programs play them back).
DYNAMICS_VELOCITY = {
    "pppp": 10, "ppp": 20, "pp": 33, "p": 49, "mp": 64, "mf": 80, "f": 96, "ff": 112,
    "fff": 120, "ffff": 127,
}  # accents (sf, sfz, fz, fp) are not levels: they do not set the dynamics of what follows

# Tempo words to quarter-note bpm (middle of the usual metronome ranges). Checked longest first.
TEMPO_WORDS = [
    ("larghetto", 60), ("largo", 50), ("lento", 56), ("grave", 40), ("adagietto", 70),
    ("adagio", 66), ("andantino", 84), ("andante", 76), ("moderato", 108),
    ("allegretto", 112), ("allegro", 132), ("vivace", 160), ("vivo", 160),
    ("prestissimo", 200), ("presto", 180), ("tempo di valse", 160), ("march", 112),
    ("ragtime", 100), ("not fast", 90), ("slow", 60), ("fast", 140),
]
DEFAULT_TEMPO_BPM = 100.0


def tempo_from_words(text: str) -> float | None:
    """Quarter-note bpm suggested by a tempo word ("Allegro con brio" -> 132), or None."""
    t = text.lower()
    for word, bpm in TEMPO_WORDS:
        if re.search(r"\b" + word, t):
            return float(bpm)
    return None


@dataclass
class Score:
    """A piano score: notes sorted by (onset_beat, pitch) and what the model needs of markings.

    Parameters
    ----------
    notes : np.ndarray
        Structured array of dtype ``NOTE_DTYPE``, shape (N,).
    tempo_marks : np.ndarray
        Structured array (onset_beat f8, bpm f4, text U64): written tempo changes, quarters/min.
    dynamics_marks : np.ndarray
        Structured array (onset_beat f8, velocity i2, text U16).
    """

    notes: np.ndarray
    tempo_marks: np.ndarray = field(default_factory=lambda: np.zeros(0, TEMPO_DTYPE))
    dynamics_marks: np.ndarray = field(default_factory=lambda: np.zeros(0, DYNAMICS_DTYPE))
    title: str = ""
    format: str = ""
    n_parts: int = 1
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    marks: np.ndarray | None = None  # (N,) render.marks.MARK_DTYPE; None = no markings read

    def __post_init__(self):
        from render.marks import MARK_DTYPE, empty_marks

        if self.notes.dtype != NOTE_DTYPE:
            raise ValueError(f"Score.notes must have dtype NOTE_DTYPE, got {self.notes.dtype}")
        if len(self.notes) == 0:
            raise ScoreError("the score has no notes", path=self.source or None)
        if self.marks is None:
            self.marks = empty_marks(len(self.notes))
        if self.marks.dtype != MARK_DTYPE or self.marks.shape != self.notes.shape:
            raise ValueError(f"Score.marks must be {len(self.notes)} rows of MARK_DTYPE, got "
                             f"{self.marks.shape} {self.marks.dtype}")
        order = np.lexsort((self.notes["pitch"], self.notes["onset_beat"]))
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError("Score.notes must be sorted by onset_beat, then pitch")

    @property
    def n_notes(self) -> int:
        return len(self.notes)

    @property
    def duration_beat(self) -> float:
        n = self.notes
        return float(np.max(n["onset_beat"] + n["duration_beat"]) - n["onset_beat"][0])

    @property
    def written_tempo_bpm(self) -> float | None:
        """The first written tempo (quarters/min), or None when the score has none."""
        return float(self.tempo_marks["bpm"][0]) if len(self.tempo_marks) else None

    def time_signatures(self) -> list[dict]:
        """Time signature changes as [{onset_beat, numerator, denominator}]."""
        return _changes(self.notes, ("ts_num", "ts_den"), ("numerator", "denominator"))

    def key_signatures(self) -> list[dict]:
        """Key signature changes as [{onset_beat, fifths, mode}]."""
        return _changes(self.notes, ("ks_fifths", "ks_mode"), ("fifths", "mode"))

    def base_ids(self) -> np.ndarray:
        """Note ids without the repeat-pass suffix (``n12-2`` -> ``n12``), shape (N,)."""
        from render.marks import strip_pass
        return np.array([strip_pass(i) for i in self.notes["id"].astype(str).tolist()], dtype=self.notes["id"].dtype)


TEMPO_DTYPE = np.dtype([("onset_beat", "f8"), ("bpm", "f4"), ("text", "U64")])
DYNAMICS_DTYPE = np.dtype([("onset_beat", "f8"), ("velocity", "i2"), ("text", "U16")])


def _changes(notes, fields, names):
    out, last = [], None
    for row in np.unique(notes[["onset_beat", *fields]]):
        key = tuple(int(row[f]) for f in fields)
        if key != last:
            out.append({"onset_beat": float(row["onset_beat"]), **dict(zip(names, key))})
            last = key
    return out


def score_bar_numbers(notes: np.ndarray) -> np.ndarray:
    """Bar number (1..) of each score note, bars counted in the order the score is played (an
    unfolded repeat counts its bars again); what the web app's section controls and reference
    reports call bar numbers."""
    if len(notes) == 0:
        return np.zeros(0, np.int64)
    starts = np.round(notes["bar_onset_beat"].astype(float), 6)
    return np.searchsorted(np.unique(starts), starts) + 1


def _quiet(fn, *args, **kwargs):
    """Call a partitura function that prints diagnostics to stdout, keeping them out of ours."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _ensure_note_ids(parts) -> None:
    """Give every note a distinct id where the file has none (MusicXML ids are optional).

    Ids are made in document order (part by part), so they are the same at every load.
    """
    import partitura as pt

    notes = [n for p in parts for n in p.iter_all(pt.score.GenericNote, include_subclasses=True)]
    ids = [n.id for n in notes]
    if all(ids) and len(set(ids)) == len(ids):
        return
    taken, k = {i for i in ids if i}, 0
    seen = set()
    for n in notes:
        if n.id and n.id not in seen:
            seen.add(n.id)
            continue
        k += 1
        while f"n{k}" in taken:
            k += 1
        n.id = f"n{k}"
        taken.add(n.id)
        seen.add(n.id)


def _markings(part, quarter_map):
    """Tempo and dynamics markings of a partitura part, positions in quarter notes."""
    import partitura as pt

    tempos = []
    for t in part.iter_all(pt.score.Tempo):
        from partitura.utils.music import to_quarter_tempo
        unit = t.unit or "q"
        tempos.append((float(quarter_map(t.start.t)), float(to_quarter_tempo(unit, t.bpm)), f"{unit}={t.bpm}"))
    for d in part.iter_all(pt.score.ConstantTempoDirection, include_subclasses=True):
        bpm = tempo_from_words(d.text or "")
        if bpm is not None:
            tempos.append((float(quarter_map(d.start.t)), bpm, (d.text or "")[:64]))
    # A metronome mark wins over a tempo word at the same place.
    tempos.sort(key=lambda x: (x[0], "=" not in x[2]))
    dedup = []
    for t in tempos:
        if not dedup or abs(dedup[-1][0] - t[0]) > 1e-6:
            dedup.append(t)
    dyn = []
    for d in part.iter_all(pt.score.ConstantLoudnessDirection, include_subclasses=True):
        text = (d.text or "").strip().lower()
        if text in DYNAMICS_VELOCITY:
            dyn.append((float(quarter_map(d.start.t)), DYNAMICS_VELOCITY[text], text))
    dyn.sort()
    return np.array(dedup, TEMPO_DTYPE), np.array(dyn, DYNAMICS_DTYPE)


def _in_force(onsets, marks, field_name, default):
    """Value of the last mark at or before each onset; ``default`` before the first."""
    out = np.full(len(onsets), default, dtype=float)
    if len(marks):
        idx = np.searchsorted(marks["onset_beat"], onsets + 1e-9, side="right") - 1
        ok = idx >= 0
        out[ok] = marks[field_name][idx[ok]]
    return out


def score_from_partitura(score_or_part, *, fmt: str, source: str = "", unfold: bool = True,
                         title: str = "", warnings: list[str] | None = None) -> Score:
    """Build a `Score` from a partitura Score or Part.

    All parts are merged into one piano part (a warning says so when there are several).
    With ``unfold`` the repeats are unfolded as performers play them (partitura's maximal
    unfolding) and ids get a pass suffix (``n12-1``); without it ids are left as written.

    Raises
    ------
    ScoreError
        When the score has no pitched notes.
    """
    import partitura as pt

    warnings = list(warnings or [])
    if isinstance(score_or_part, pt.score.Score):
        parts = list(score_or_part.parts)
        title = title or (score_or_part.title or "")
    else:
        parts = [score_or_part]
    parts = [p for p in parts if len(p.notes_tied)]
    if not parts:
        raise ScoreError("the score has no notes", path=source or None)
    n_parts = len(parts)
    _ensure_note_ids(parts)
    if n_parts > 1 and fmt != "mei":  # partitura reads each MEI staff of a piano as a part
        names = ", ".join(str(p.part_name or p.id or "?") for p in parts[:6])
        warnings.append(f"{n_parts} parts ({names}) are played together as one piano part")
    if n_parts > 1:
        part = _quiet(pt.score.merge_parts, parts)
    else:
        part = parts[0]
    try:
        from render.marks import marks_from_partitura
        marked = marks_from_partitura(part)
    except Exception as exc:  # markings are an extra: a score whose markings cannot be read still renders
        marked = None
        warnings.append(f"markings (slurs, articulations, hairpins) could not be read: {exc}")
    if unfold:
        try:
            part = _quiet(pt.score.unfold_part_maximal, part, update_ids=True)
        except Exception as exc:  # partitura fails on some malformed repeat structures
            warnings.append(f"repeats could not be unfolded ({exc}); playing the score as written")
    # Unpitched (percussion) notes have no place on a piano.
    na = _quiet(part.note_array, include_time_signature=True, include_key_signature=True,
                include_grace_notes=True, include_staff=True)
    if len(na) == 0:
        raise ScoreError("the score has no pitched notes", path=source or None)
    qmap = part.quarter_map
    tempo_marks, dyn_marks = _markings(part, qmap)

    notes = np.zeros(len(na), NOTE_DTYPE)
    notes["id"] = na["id"]
    notes["pitch"] = na["pitch"]
    notes["onset_beat"] = na["onset_quarter"]
    notes["duration_beat"] = np.where(na["is_grace"], 0.0, na["duration_quarter"])
    notes["staff"] = na["staff"]
    notes["voice"] = na["voice"]
    notes["is_grace"] = na["is_grace"].astype(bool)
    # Bars from the measures themselves (works for parts with several divisions, unlike
    # note_array's metrical fields).
    measures = list(part.iter_all(pt.score.Measure))
    if measures:
        m_start = qmap(np.array([m.start.t for m in measures]))
        m_end = qmap(np.array([m.end.t if m.end is not None else m.start.t for m in measures]))
        order = np.argsort(m_start, kind="stable")
        m_start, m_end = m_start[order], m_end[order]
        k = np.clip(np.searchsorted(m_start, na["onset_quarter"] + 1e-9, side="right") - 1, 0, len(m_start) - 1)
        notes["bar_onset_beat"] = np.minimum(m_start[k], na["onset_quarter"])
        notes["bar_duration_beat"] = np.maximum(m_end[k] - m_start[k], 0.0)
    else:
        bar = 4.0 * na["ts_beats"] / np.maximum(na["ts_beat_type"], 1)
        notes["bar_onset_beat"] = np.floor(na["onset_quarter"] / bar) * bar
        notes["bar_duration_beat"] = bar
    notes["ts_num"] = na["ts_beats"]
    notes["ts_den"] = na["ts_beat_type"]
    notes["ks_fifths"] = na["ks_fifths"]
    notes["ks_mode"] = na["ks_mode"]
    onsets = notes["onset_beat"]
    notes["tempo_bpm"] = _in_force(onsets, tempo_marks, "bpm", np.nan)
    notes["velocity_written"] = _in_force(onsets, dyn_marks, "velocity", 0)
    # Zero-length non-grace notes (broken durations) would vanish: give them a 32nd.
    bad = (~notes["is_grace"]) & (notes["duration_beat"] <= 0)
    if bad.any():
        notes["duration_beat"][bad] = 0.125
        warnings.append(f"{int(bad.sum())} notes had no duration and were given a 32nd")
    from render.marks import empty_marks, marks_by_base_id
    marks = empty_marks(len(notes)) if marked is None else marks_by_base_id(notes["id"], *marked)
    order = np.lexsort((notes["pitch"], notes["onset_beat"]))
    return Score(notes=notes[order], tempo_marks=tempo_marks, dynamics_marks=dyn_marks, title=title,
                 format=fmt, n_parts=n_parts, warnings=warnings, source=str(source), marks=marks[order])
