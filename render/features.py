"""Score features for the model (paper section 3.2) as compact integer indices, and the piano roll.

Each note gets one small integer per categorical input (the model embeds them; no dense
one-hots are ever built), plus its frame in the piece's piano roll at 32nd-note resolution
(8 frames per quarter note). Transposition is a cheap operation on these arrays.
"""
from __future__ import annotations

import numpy as np

from render.marks import MARK_CLASSES, empty_marks

FRAMES_PER_BEAT = 8  # 32nd notes per quarter

# Field name -> number of classes. Order is the column order of `score_features`.
FEATURE_CLASSES = {
    "pitch": 128,          # MIDI pitch
    "ioi_96": 512,         # onset minus the previous note's, in 96th notes (1/24 quarter)
    "duration_96": 192,    # written duration, 96th notes (0 = grace)
    "key": 15,             # fifths + 7
    "ts_num": 12,          # numerator - 1
    "ts_den": 6,           # log2(denominator)
    "tempo_30": 10,        # written tempo / 30 bpm, 30..300 -> 0..9 (rounded, clipped)
    "velocity_10": 14,     # 0 unmarked, else 1 + written velocity // 10
    "bar_pos_12": 144,     # onset within the bar in 1/12 quarter (metrical position)
    "staff": 2,            # 0 upper, 1 lower (and below)
    "is_grace": 2,
    # v2 (DESIGN 4.1): where the note stands in the meter, the chord and the phrase, and markings
    "metric": 5,           # 0 downbeat, 1 strong beat inside the bar, 2 beat, 3 half beat, 4 other
    "chord_rank": 4,       # 0 alone at its onset, 1 top, 2 bass, 3 inner
    "to_rest": 8,          # beats to the next rest (nothing sounding), log2 buckets (see `log_bucket`)
    "to_fermata": 11,      # beats to the next fermata at or after the note, 10 = none
    "to_section_end": 11,  # beats to the next section end (double / final / repeat bar), 10 = none
    "to_end": 10,          # beats to the end of the piece
    "since_section": 10,   # beats since the last section start
    "piece_pos": 10,       # tenths of the piece
    **{k: v for k, v in MARK_CLASSES.items() if k != "section_end"},
    # v2.7: the harmony at the note's onset against the beat before it (`harmony_change`), where
    # pianists change the pedal
    "harmony": 4,          # 0 no new pitch class, 1 new ones, 2 one a semitone from the last beat's, 3 after silence
}
FEATURE_NAMES = list(FEATURE_CLASSES)
BEAT_FEATURES = 33  # columns of `beat_context` (24 before the marked pedal, model v2.6; 27 before harmony, v2.7)


def log_bucket(beats: np.ndarray, n: int = 8) -> np.ndarray:
    """Distances in beats to classes 0..n-1: <0.5, <1, <2, <4, <8, ... (last: the rest); inf -> n."""
    b = np.asarray(beats, float)
    out = np.clip(np.floor(np.log2(np.maximum(b, 1e-9) * 2.0)) + 1, 0, n - 1)
    return np.where(np.isfinite(b), out, n).astype(np.int64)


def beat_index(onset_beat: np.ndarray) -> np.ndarray:
    """(N,) int64 beat (quarter) of each note, counted from the bar line before the first note."""
    onset = np.asarray(onset_beat, float)
    if not len(onset):
        return np.zeros(0, np.int64)
    return np.floor(onset - np.floor(onset[0]) + 1e-6).astype(np.int64)


def beat_first(onset_beat: np.ndarray) -> np.ndarray:
    """(N,) bool: the first note (in score order) of each beat that has notes."""
    b = beat_index(onset_beat)
    first = np.ones(len(b), bool)
    first[1:] = b[1:] != b[:-1]
    return first


def group_first(onset_beat: np.ndarray) -> np.ndarray:
    """(N,) bool: the first note of each onset (chord)."""
    first = np.ones(len(onset_beat), bool)
    first[1:] = np.diff(onset_beat) > 1e-9
    return first


def _next_at_or_after(onset: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each onset, the first point >= onset minus onset (inf where none)."""
    if not len(points):
        return np.full(len(onset), np.inf)
    points = np.sort(points)
    k = np.searchsorted(points, onset - 1e-6)
    out = np.full(len(onset), np.inf)
    ok = k < len(points)
    out[ok] = points[k[ok]] - onset[ok]
    return out


def _rest_starts(notes: np.ndarray) -> np.ndarray:
    """Score positions (beats) where every note has ended and the next onset is later (rests)."""
    onset = notes["onset_beat"]
    end = np.maximum.accumulate(onset + notes["duration_beat"])
    nxt = np.append(onset[1:], np.inf)
    gap = nxt > end + 1e-3
    return end[gap & np.isfinite(nxt)]


def _metric(notes: np.ndarray) -> np.ndarray:
    pos = notes["onset_beat"] - notes["bar_onset_beat"]
    num, den = notes["ts_num"].astype(float), np.maximum(notes["ts_den"], 1).astype(float)
    compound = (den == 8) & (num % 3 == 0) & (num > 3)
    beat = np.where(compound, 1.5, 4.0 / den)
    n_beats = np.where(compound, num / 3, num)
    half_bar = np.where(n_beats % 2 == 0, beat * n_beats / 2, np.inf)

    def on(x, step):
        r = np.mod(x, step)
        return (r < 1e-3) | (step - r < 1e-3)

    out = np.full(len(notes), 4, np.int64)
    out[on(pos, beat / 2)] = 3
    out[on(pos, beat)] = 2
    out[np.isfinite(half_bar) & on(pos, np.where(np.isfinite(half_bar), half_bar, 1.0))] = 1
    out[pos < 1e-3] = 0
    return out


def _chord_rank(notes: np.ndarray) -> np.ndarray:
    grp = np.cumsum(group_first(notes["onset_beat"])) - 1
    size = np.bincount(grp)
    pitch = notes["pitch"].astype(int)
    hi = np.full(len(size), -1)
    lo = np.full(len(size), 999)
    np.maximum.at(hi, grp, pitch)
    np.minimum.at(lo, grp, pitch)
    out = np.full(len(notes), 3, np.int64)
    out[pitch == lo[grp]] = 2
    out[pitch == hi[grp]] = 1
    out[size[grp] == 1] = 0
    return out


def harmony_change(notes: np.ndarray) -> np.ndarray:
    """The pitch classes struck at each note's onset against those struck in the beat before it.

    Parameters
    ----------
    notes : (N,) NOTE_DTYPE sorted by onset.

    Returns
    -------
    (N,) int64, the same for the notes of an onset group: 3 nothing struck in the quarter before
    (the piece's start, after a rest), 2 a new pitch class a semitone from one of the quarter
    before (held through the pedal they would clash: pianists change it), 1 new pitch classes
    without such a clash, 0 none new (the same harmony, or a figure within it).
    """
    n = len(notes)
    if n == 0:
        return np.zeros(0, np.int64)
    onset = notes["onset_beat"].astype(float)
    pc = notes["pitch"].astype(int) % 12
    cum = np.zeros((n + 1, 12), np.int32)  # cum[k, p]: notes of pitch class p among the first k
    np.add.at(cum, (np.arange(1, n + 1), pc), 1)
    cum = np.cumsum(cum, axis=0)
    lo = np.searchsorted(onset, onset - 1.0 - 1e-6, side="left")  # the quarter before, its start included
    start = np.searchsorted(onset, onset, side="left")
    end = np.searchsorted(onset, onset, side="right")
    before = (cum[start] - cum[lo]) > 0      # (N, 12) struck in the quarter before the onset
    own = (cum[end] - cum[start]) > 0        # (N, 12) struck at the onset (the whole chord)
    new = own & ~before
    near = np.roll(before, 1, axis=1) | np.roll(before, -1, axis=1)
    out = np.where((new & near).any(1), 2, np.where(new.any(1), 1, 0))
    return np.where(before.any(1), out, 3).astype(np.int64)


def score_features(notes: np.ndarray, written_bpm: np.ndarray, marks: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-note categorical features.

    Parameters
    ----------
    notes : (N,) NOTE_DTYPE, sorted by onset then pitch.
    written_bpm : (N,) written tempo per note, quarter notes per minute (no NaN).
    marks : (N,) render.marks.MARK_DTYPE, or None for a score without markings.

    Returns
    -------
    feat : (N, F) int16, columns in ``FEATURE_NAMES`` order, each in [0, classes).
    frame : (N,) int32 onset frame in the piano roll (32nd notes from the first onset).
    """
    n = len(notes)
    onset = notes["onset_beat"]
    feat = np.zeros((n, len(FEATURE_NAMES)), np.int16)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}

    def put(name, values):
        feat[:, col[name]] = np.clip(values, 0, FEATURE_CLASSES[name] - 1)

    put("pitch", notes["pitch"])
    ioi = np.diff(onset, prepend=onset[0] if n else 0.0)
    put("ioi_96", np.round(ioi * 24))
    put("duration_96", np.round(notes["duration_beat"] * 24))
    put("key", notes["ks_fifths"] + 7)
    put("ts_num", notes["ts_num"] - 1)
    put("ts_den", np.round(np.log2(np.maximum(notes["ts_den"], 1))))
    put("tempo_30", np.round(np.asarray(written_bpm, float) / 30.0) - 1)
    vel = notes["velocity_written"].astype(int)
    put("velocity_10", np.where(vel > 0, 1 + vel // 10, 0))
    put("bar_pos_12", np.round((onset - notes["bar_onset_beat"]) * 12))
    put("staff", notes["staff"] - 1)
    put("is_grace", notes["is_grace"].astype(int))
    marks = empty_marks(n) if marks is None else marks
    if n:
        put("metric", _metric(notes))
        put("chord_rank", _chord_rank(notes))
        put("to_rest", log_bucket(_next_at_or_after(onset, _rest_starts(notes))))
        put("to_fermata", log_bucket(_next_at_or_after(onset, onset[marks["fermata"] > 0]), 10))
        bar_end = notes["bar_onset_beat"] + notes["bar_duration_beat"]
        sections = bar_end[marks["section_end"] > 0]
        put("to_section_end", log_bucket(_next_at_or_after(onset + 1e-3, sections), 10))
        end = float(np.max(onset + notes["duration_beat"]))
        put("to_end", log_bucket(end - onset, 10))
        starts = np.concatenate([[onset[0]], np.unique(sections)])
        k = np.searchsorted(starts, onset + 1e-6, side="right") - 1
        put("since_section", log_bucket(onset - starts[np.maximum(k, 0)], 10))
        put("piece_pos", np.floor(10 * (onset - onset[0]) / max(end - onset[0], 1e-6)))
        for k in MARK_CLASSES:
            if k in col:
                put(k, marks[k])
        put("harmony", harmony_change(notes))
    frame = np.round((onset - (onset[0] if n else 0.0)) * FRAMES_PER_BEAT).astype(np.int32)
    return feat, frame


def beat_context(notes: np.ndarray, written_bpm: np.ndarray, marks: np.ndarray | None = None,
                 harmony: np.ndarray | None = None) -> np.ndarray:
    """Dense per-beat summary of the score, the input of the model's non-causal context.

    Parameters
    ----------
    notes : (N,) NOTE_DTYPE sorted; written_bpm : (N,) bpm; marks : (N,) MARK_DTYPE or None.
    harmony : (N,) `harmony_change` of these notes, when the caller has it (the ``harmony``
        column of `score_features`); None computes it.

    Returns
    -------
    (n_beats, BEAT_FEATURES) float32, row b for beat b of `beat_index` (beats without an
    onset included: rests and held notes have a row too).
    """
    n = len(notes)
    marks = empty_marks(n) if marks is None else marks
    b = beat_index(notes["onset_beat"])
    nb = int(b[-1]) + 1 if n else 1
    f = np.zeros((nb, BEAT_FEATURES), np.float32)
    cnt = np.bincount(b, minlength=nb).astype(float)
    has = cnt > 0

    def mean(v):
        return np.where(has, np.bincount(b, np.asarray(v, float), nb) / np.maximum(cnt, 1), 0.0)

    def anyof(v):
        return (np.bincount(b, np.asarray(v, float), nb) > 0).astype(float)

    pitch = notes["pitch"].astype(float)
    lo = np.full(nb, 128.0)
    hi = np.zeros(nb)
    np.minimum.at(lo, b, pitch)
    np.maximum.at(hi, b, pitch)
    f[:, 0] = np.log1p(cnt) / 3.0
    f[:, 1] = mean(pitch) / 64.0 - 1.0
    f[:, 2] = np.where(has, lo, 0.0) / 64.0 - 1.0
    f[:, 3] = np.where(has, hi, 0.0) / 64.0 - 1.0
    f[:, 4] = mean(notes["velocity_written"]) / 64.0
    f[:, 5] = mean(marks["hairpin"] == 1)
    f[:, 6] = mean(marks["hairpin"] == 2)
    f[:, 7] = anyof(marks["tempo_change"] == 1)
    f[:, 8] = anyof(marks["tempo_change"] == 2)
    f[:, 9] = anyof(marks["fermata"])
    f[:, 10] = anyof(marks["slur"] == 1)
    f[:, 11] = anyof(marks["slur"] == 3)
    f[:, 12] = mean(marks["artic"] > 0)
    f[:, 13] = mean(marks["accent"] > 0)
    f[:, 14] = (~has).astype(float)
    f[:, 15] = anyof(np.abs(notes["onset_beat"] - notes["bar_onset_beat"]) < 1e-3)
    ends = np.unique((notes["bar_onset_beat"] + notes["bar_duration_beat"])[marks["section_end"] > 0])
    eb = beat_index(np.concatenate([notes["onset_beat"][:1], ends - 1e-3]))[1:] if n else []
    f[np.asarray(eb, np.int64)[(np.asarray(eb) >= 0) & (np.asarray(eb) < nb)], 16] = 1.0
    f[:, 17] = np.arange(nb) / max(nb - 1, 1)
    f[:, 18] = mean(np.log2(np.maximum(notes["duration_beat"], 1 / 32)) / 4.0)
    f[:, 19] = anyof(marks["dyn_accent"])
    bass = np.where(has, lo, np.nan)
    prev = np.concatenate([[np.nan], bass[:-1]])
    f[:, 20] = (np.isfinite(bass) & (bass != prev)).astype(float)  # a new bass note: a harmony change
    f[:, 21] = mean(np.log2(np.asarray(written_bpm, float) / 100.0))
    # Bar-level summaries broadcast to the beats of each bar: the dynamics and density of the bar.
    bar = np.full(nb, -1.0)
    bar[b] = notes["bar_onset_beat"]
    bar = np.maximum.accumulate(bar)
    _, bar_id = np.unique(bar, return_inverse=True)
    bar_cnt = np.bincount(bar_id, cnt)
    nbeats_bar = np.bincount(bar_id)
    f[:, 22] = (np.log1p(bar_cnt / np.maximum(nbeats_bar, 1)) / 3.0)[bar_id]
    f[:, 23] = (np.bincount(bar_id, f[:, 4] * cnt) / np.maximum(bar_cnt, 1))[bar_id]
    # The sustain pedal the score marks, and whether it marks any: a score that marks none says
    # nothing about the pedal (most editions), one that marks it says where.
    f[:, 24] = mean(marks["pedal"] > 0)
    f[:, 25] = anyof(marks["pedal"] == 2)
    f[:, 26] = float((marks["pedal"] > 0).any())
    # v2.7, harmony: how the beat's onsets change the pitch classes (`harmony_change`), how many
    # the beat strikes and how many of them lie a semitone apart (a scale or chromatic run), and
    # whether the bass's pitch class moves (col 20 also counts an octave leap).
    hc = harmony_change(notes) if harmony is None else np.asarray(harmony)
    for j, k in enumerate((1, 2, 3)):
        f[:, 27 + j] = mean(hc == k)
    pcs = np.zeros((nb, 12), bool)
    pcs[b, notes["pitch"].astype(int) % 12] = True
    f[:, 30] = pcs.sum(1) / 12.0
    f[:, 31] = (pcs & np.roll(pcs, 1, axis=1)).sum(1) / 12.0
    bass_pc = np.where(has, np.where(has, lo, 0) % 12, -1)
    last = np.where(has, np.arange(nb), -1)
    np.maximum.accumulate(last, out=last)
    prev_on = np.concatenate([[-1], last[:-1]])  # the last beat with onsets before each beat
    f[:, 32] = (has & (prev_on >= 0) & (bass_pc != bass_pc[np.maximum(prev_on, 0)])).astype(float)
    # Beats between onsets carry on the markings in force.
    for c in (4, 5, 6, 21, 24):
        idx = np.where(has, np.arange(nb), 0)
        np.maximum.accumulate(idx, out=idx)
        f[:, c] = f[idx, c]
    return f


def roll_notes(notes: np.ndarray) -> np.ndarray:
    """The piano roll as note spans: (N, 3) int32 rows (pitch, start frame, end frame).

    Grace notes and very short notes occupy at least one frame.
    """
    onset = notes["onset_beat"] - notes["onset_beat"][0]
    start = np.round(onset * FRAMES_PER_BEAT).astype(np.int32)
    end = np.round((onset + notes["duration_beat"]) * FRAMES_PER_BEAT).astype(np.int32)
    return np.stack([notes["pitch"].astype(np.int32), start, np.maximum(end, start + 1)], axis=1)


def piano_roll(spans: np.ndarray, n_frames: int | None = None, start: int = 0,
               transpose: int = 0) -> np.ndarray:
    """Rasterise note spans into a piano roll.

    Parameters
    ----------
    spans : (N, 3) int rows (pitch, start frame, end frame), from `roll_notes`.
    n_frames : frames to draw (default: up to the last note end).
    start : first frame drawn (for crops).
    transpose : semitones added to every pitch; pitches leaving 0..127 are dropped.

    Returns
    -------
    roll : (128, T) uint8, 1 where a note sounds.
    """
    if n_frames is None:
        n_frames = int(spans[:, 2].max()) - start if len(spans) else 0
    roll = np.zeros((128, n_frames), np.uint8)
    p = spans[:, 0] + transpose
    s = np.clip(spans[:, 1] - start, 0, n_frames)
    e = np.clip(spans[:, 2] - start, 0, n_frames)
    keep = (p >= 0) & (p < 128) & (e > s)
    # Difference array along time, then a cumulative sum: no per-note Python loop.
    diff = np.zeros((128, n_frames + 1), np.int32)
    np.add.at(diff, (p[keep], s[keep]), 1)
    np.add.at(diff, (p[keep], e[keep]), -1)
    roll[:] = np.cumsum(diff[:, :-1], axis=1) > 0
    return roll


def transpose_features(feat: np.ndarray, semitones: int) -> np.ndarray:
    """Features of the piece transposed by ``semitones`` (pitch and key signature change)."""
    out = feat.copy()
    c_p, c_k = FEATURE_NAMES.index("pitch"), FEATURE_NAMES.index("key")
    out[:, c_p] = np.clip(feat[:, c_p] + semitones, 0, 127)
    fifths = feat[:, c_k].astype(int) - 7
    # Up one semitone = +7 fifths; keep the spelling within -6..+5 accidentals (+7 as 7).
    out[:, c_k] = ((fifths + 7 * semitones + 6) % 12 - 6) + 7
    return out
