"""Score features as integer indices, the piano roll, transposition."""
from __future__ import annotations

import numpy as np

from render.features import (FEATURE_CLASSES, FEATURE_NAMES, FRAMES_PER_BEAT, piano_roll, roll_notes,
                             score_features, transpose_features)
from tests.unit.ml.conftest import make_score


def test_features_are_in_range_and_meaningful():
    score = make_score(8)
    feat, frame = score_features(score.notes, np.full(score.n_notes, 100.0))
    assert feat.shape == (score.n_notes, len(FEATURE_NAMES)) and feat.dtype == np.int16
    for i, (name, k) in enumerate(FEATURE_CLASSES.items()):
        assert 0 <= feat[:, i].min() and feat[:, i].max() < k, name
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert (feat[:, col["pitch"]] == score.notes["pitch"]).all()
    assert set(feat[:, col["ioi_96"]].tolist()) <= {0, 12}        # chords and eighths (12/96)
    assert (feat[:, col["tempo_30"]] == 2).all()                  # 100 bpm ~ 90 -> class 2
    assert (frame == np.round(score.notes["onset_beat"] * FRAMES_PER_BEAT)).all()


def test_piano_roll_marks_each_note():
    score = make_score(4)
    spans = roll_notes(score.notes)
    roll = piano_roll(spans)
    for p, s, e in spans:
        assert roll[p, s:e].all()
    assert roll.sum() == sum(len(set(range(s, e))) for p, s, e in
                             {(int(p), int(s), int(e)) for p, s, e in spans})
    shifted = piano_roll(spans, roll.shape[1], transpose=3)
    assert np.array_equal(shifted[3:], roll[:-3])


def test_transposition_changes_pitch_and_key():
    score = make_score(4)
    feat, _ = score_features(score.notes, np.full(score.n_notes, 100.0))
    up = transpose_features(feat, 2)
    k, p = FEATURE_NAMES.index("key"), FEATURE_NAMES.index("pitch")
    assert (up[:, p] == feat[:, p] + 2).all()
    assert (up[:, k] - 7 == 2).all()                 # C major + 2 semitones = D major (2 sharps)
    assert (transpose_features(feat, -1)[:, k] - 7 == 5).all()   # down a semitone: B major, 5 sharps
    assert (transpose_features(up, -2) == feat).all()
