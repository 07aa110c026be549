"""Score features for the model (paper section 3.2) as compact integer indices, and the piano roll.

Each note gets one small integer per categorical input (the model embeds them; no dense
one-hots are ever built), plus its frame in the piece's piano roll at 32nd-note resolution
(8 frames per quarter note). Transposition is a cheap operation on these arrays.
"""
from __future__ import annotations

import numpy as np

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
}
FEATURE_NAMES = list(FEATURE_CLASSES)


def score_features(notes: np.ndarray, written_bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-note categorical features.

    Parameters
    ----------
    notes : (N,) NOTE_DTYPE, sorted by onset then pitch.
    written_bpm : (N,) written tempo per note, quarter notes per minute (no NaN).

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
    frame = np.round((onset - (onset[0] if n else 0.0)) * FRAMES_PER_BEAT).astype(np.int32)
    return feat, frame


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
