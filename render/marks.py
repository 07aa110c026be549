"""Score markings per note (model v2, DESIGN 4.1): what a pianist reads beyond pitch and rhythm.

``MARK_DTYPE`` holds, for each note of a `render.score.Score` (same order as ``score.notes``):

- ``hairpin``      0 none, 1 under a crescendo wedge, 2 under a diminuendo wedge;
- ``dyn_accent``   1 when an impulsive dynamic (sf, sfz, fz, fp, rf) stands at the note's onset;
- ``tempo_change`` 0 none, 1 slowing (rit., rall., allarg., calando ...), 2 speeding (accel., string.);
- ``fermata``      1 when the note (or a barline at its end) carries a fermata;
- ``slur``         0 none, 1 first note of a slur, 2 inside, 3 last note;
- ``artic``        0 none, 1 staccato, 2 staccatissimo / spiccato, 3 tenuto, 4 portato (detached-legato);
- ``accent``       0 none, 1 accent / stress, 2 strong accent (marcato);
- ``section_end``  1 when the note's bar ends with a double, final or repeat barline;
- ``pedal``        the sustain pedal the score marks (Ped. ... *): 0 none, 1 under a marked pedal,
                   2 where a marked pedal starts (a new press: after a lift or a change).

Partitura reads these from MusicXML, MEI and kern alike; a MIDI score has none (all zeros),
and every consumer must work with all zeros.
"""
from __future__ import annotations

import numpy as np

MARK_DTYPE = np.dtype([
    ("hairpin", "i1"), ("dyn_accent", "i1"), ("tempo_change", "i1"), ("fermata", "i1"),
    ("slur", "i1"), ("artic", "i1"), ("accent", "i1"), ("section_end", "i1"), ("pedal", "i1"),
])
MARK_CLASSES = {"hairpin": 3, "dyn_accent": 2, "tempo_change": 3, "fermata": 2, "slur": 4, "artic": 5,
                "accent": 3, "section_end": 2, "pedal": 3}

SLOWING_WORDS = ("rit", "rall", "allarg", "calando", "smorz", "morendo", "slentando", "ritard", "ritenuto",
                 "stentando", "largando", "perdendo")
SPEEDING_WORDS = ("accel", "string", "incalz", "affrett", "stretto", "animando", "più mosso", "piu mosso")
ARTIC_CODES = {"staccato": 1, "staccatissimo": 2, "spiccato": 2, "tenuto": 3, "detached-legato": 4}
ACCENT_CODES = {"accent": 1, "stress": 1, "soft-accent": 1, "strong-accent": 2}
SECTION_BARLINES = {"light-light", "light-heavy", "heavy-light", "heavy-heavy", "heavy"}
DEFAULT_SPAN_BEAT = 4.0  # a wedge or rit. without an end lasts this long (quarters)


def empty_marks(n: int) -> np.ndarray:
    """(n,) MARK_DTYPE of zeros: a score without markings."""
    return np.zeros(n, MARK_DTYPE)


def _spans(objs, qmap, default_end=DEFAULT_SPAN_BEAT):
    out = []
    for o in objs:
        s = float(qmap(o.start.t))
        e = float(qmap(o.end.t)) if getattr(o, "end", None) is not None else s + default_end
        out.append((s, max(e, s)))
    return out


def _in_spans(onsets: np.ndarray, spans) -> np.ndarray:
    hit = np.zeros(len(onsets), bool)
    for s, e in spans:
        hit |= (onsets >= s - 1e-6) & (onsets < e - 1e-6)
    return hit


def strip_pass(note_id: str) -> str:
    """The note id without partitura's repeat-pass suffix (``n12-2`` -> ``n12``; ``note-3-1`` ->
    ``note-3``); ids without one are returned as they are."""
    head, sep, tail = note_id.rpartition("-")
    return head if sep and tail.isdigit() else note_id


def marks_by_base_id(ids: np.ndarray, marked_ids: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """Markings for notes ``ids`` (e.g. ``n12-2`` after unfolding repeats) from markings read on
    the score as written (``n12``), linked by the id without its repeat-pass suffix; (N,) MARK_DTYPE."""
    table = dict(zip(marked_ids.tolist(), range(len(marked_ids))))
    base = [strip_pass(i) for i in np.asarray(ids).astype(str).tolist()]
    out = empty_marks(len(base))
    for i, b in enumerate(base):
        j = table.get(b)
        if j is not None:
            out[i] = marks[j]
    return out


def marks_from_partitura(part) -> tuple[np.ndarray, np.ndarray]:
    """Markings of the notes of a partitura part as written (before unfolding repeats: partitura's
    unfolding drops slurs).

    Returns
    -------
    ids : (N,) note ids of the part.
    marks : (N,) MARK_DTYPE.
    """
    import partitura as pt

    qmap = part.quarter_map
    notes = list(part.iter_all(pt.score.GenericNote, include_subclasses=True))
    ids = np.array([n.id or "" for n in notes], dtype=object).astype(str)
    onsets = np.array([float(qmap(n.start.t)) for n in notes])
    measures = sorted((float(qmap(m.start.t)), float(qmap(m.end.t))) for m in part.iter_all(pt.score.Measure)
                      if m.end is not None)
    if measures:
        starts = np.array([m[0] for m in measures])
        k = np.clip(np.searchsorted(starts, onsets + 1e-9, side="right") - 1, 0, len(starts) - 1)
        bar_end = np.array([m[1] for m in measures])[k]
    else:
        bar_end = np.full(len(onsets), np.inf)
    marks = empty_marks(len(ids))
    pos = {nid: i for i, nid in enumerate(ids.tolist())}
    for note in part.iter_all(pt.score.Note, include_subclasses=True):
        i = pos.get(note.id)
        if i is None:
            continue
        for a in getattr(note, "articulations", None) or ():
            if a in ARTIC_CODES:
                marks["artic"][i] = max(marks["artic"][i], ARTIC_CODES[a])
            if a in ACCENT_CODES:
                marks["accent"][i] = max(marks["accent"][i], ACCENT_CODES[a])
        if getattr(note, "fermata", None) is not None:
            marks["fermata"][i] = 1
    # A fermata on a rest or a barline holds the last notes struck before it (rests are not struck).
    is_note = np.array([isinstance(n, pt.score.Note) for n in notes], bool)
    uniq = np.unique(onsets[is_note])
    for f in part.iter_all(pt.score.Fermata):
        if not isinstance(getattr(f, "ref", None), pt.score.Note) and len(uniq):
            t = float(qmap(f.start.t))
            k = np.searchsorted(uniq, t - 1e-6) - 1
            if k >= 0 and t - uniq[k] <= 8.0:
                marks["fermata"][np.isclose(onsets, uniq[k])] = 1

    cresc = _spans(part.iter_all(pt.score.IncreasingLoudnessDirection, include_subclasses=True), qmap)
    dim = _spans(part.iter_all(pt.score.DecreasingLoudnessDirection, include_subclasses=True), qmap)
    marks["hairpin"][_in_spans(onsets, cresc)] = 1
    marks["hairpin"][_in_spans(onsets, dim)] = 2
    for d in part.iter_all(pt.score.ImpulsiveLoudnessDirection, include_subclasses=True):
        marks["dyn_accent"][np.isclose(onsets, float(qmap(d.start.t)))] = 1
    for d in part.iter_all(pt.score.ConstantLoudnessDirection, include_subclasses=True):
        if (d.text or "").strip().lower() in ("sf", "sfz", "sffz", "fz", "rf", "rfz", "fp", "sfp"):
            marks["dyn_accent"][np.isclose(onsets, float(qmap(d.start.t)))] = 1

    slowing, speeding = [], []
    for d in part.iter_all(pt.score.TempoDirection, include_subclasses=True):
        text = (getattr(d, "text", "") or "").lower()
        if isinstance(d, pt.score.DecreasingTempoDirection) or any(w in text for w in SLOWING_WORDS):
            slowing.append(d)
        elif isinstance(d, pt.score.IncreasingTempoDirection) or any(w in text for w in SPEEDING_WORDS):
            speeding.append(d)
    marks["tempo_change"][_in_spans(onsets, _spans(slowing, qmap))] = 1
    marks["tempo_change"][_in_spans(onsets, _spans(speeding, qmap))] = 2

    for s in part.iter_all(pt.score.Slur):
        start = float(qmap(s.start.t))
        end = float(qmap(s.end.t)) if s.end is not None else start
        # partitura ends a slur where its last note ends: mark that note, not the next one
        last = getattr(s, "end_note", None)
        if last is not None and last.start is not None:
            end = float(qmap(last.start.t))
        if end <= start:
            continue
        # Slurs are read across both staves: phrasing marks span the texture.
        inside = (onsets > start + 1e-6) & (onsets < end - 1e-6) & is_note
        marks["slur"][inside & (marks["slur"] == 0)] = 2
        marks["slur"][np.isclose(onsets, start)] = 1
        marks["slur"][np.isclose(onsets, end)] = 3

    # Marked sustain pedal: a press at its start, held to its end (a start while one is held is
    # a change; a pedal without an end lasts DEFAULT_SPAN_BEAT).
    for d in part.iter_all(pt.score.SustainPedalDirection):
        s, e = _spans([d], qmap)[0]
        marks["pedal"][_in_spans(onsets, [(s, e)]) & (marks["pedal"] == 0) & is_note] = 1
        marks["pedal"][np.isclose(onsets, s) & is_note] = 2

    ends = [float(qmap(b.start.t)) for b in part.iter_all(pt.score.Barline) if b.style in SECTION_BARLINES]
    ends += [float(qmap(r.end.t)) for r in part.iter_all(pt.score.Repeat) if r.end is not None]
    for t in ends:
        marks["section_end"][np.isclose(bar_end, t)] = 1
    return ids, marks
