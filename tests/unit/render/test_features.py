"""Score features as integer indices (v1 and v2), the per-beat context, the piano roll, transposition."""
from __future__ import annotations

import numpy as np
import pytest

from render.features import (BEAT_FEATURES, FEATURE_CLASSES, FEATURE_NAMES, FRAMES_PER_BEAT, beat_context,
                             beat_first, beat_index, group_first, harmony_change, log_bucket, piano_roll, roll_notes,
                             score_features, transpose_features)
from render.marks import MARK_CLASSES, empty_marks
from render.score import NOTE_DTYPE, Score

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def make_notes(rows, ts=(4, 4), tempo=100.0, velocity=64):
    """NOTE_DTYPE from rows (onset_beat, duration_beat, pitch[, staff]), bars from the time signature."""
    rows = sorted(rows, key=lambda r: (r[0], r[2]))
    bar = 4.0 * ts[0] / ts[1]
    n = np.zeros(len(rows), NOTE_DTYPE)
    for i, (on, du, p, *st) in enumerate(rows):
        staff = st[0] if st else (1 if p >= 60 else 2)
        n[i] = (f"n{i + 1}", p, on, du, staff, staff, False, np.floor(on / bar + 1e-9) * bar, bar,
                ts[0], ts[1], 0, 1, tempo, velocity)
    return n


def make_score(n_beats=16):
    """A two-hand piece: eighth-note melody over quarter-note dyads, 4/4, C major."""
    rows = []
    for b in range(n_beats):
        for k in range(2):
            rows.append((b + 0.5 * k, 0.5, 72 + [0, 2, 4, 5, 7, 5, 4, 2][(2 * b + k) % 8], 1))
        for p in (48 + (b % 4) * 2, 55 + (b % 4) * 2):
            rows.append((float(b), 1.0, p, 2))
    notes = make_notes(rows)
    notes["velocity_written"] = np.where(notes["onset_beat"] < n_beats / 2, 64, 96)
    return Score(notes=notes, title="synthetic", format="test")


def features(notes, marks=None, bpm=100.0):
    feat, _ = score_features(notes, np.full(len(notes), bpm), marks)
    return {name: feat[:, i] for name, i in COL.items()}


def test_features_are_in_range_and_meaningful():
    score = make_score(8)
    feat, frame = score_features(score.notes, np.full(score.n_notes, 100.0))
    assert feat.shape == (score.n_notes, len(FEATURE_NAMES)) and feat.dtype == np.int16
    for i, (name, k) in enumerate(FEATURE_CLASSES.items()):
        assert 0 <= feat[:, i].min() and feat[:, i].max() < k, name
    assert (feat[:, COL["pitch"]] == score.notes["pitch"]).all()
    assert set(feat[:, COL["ioi_96"]].tolist()) <= {0, 12}        # chords and eighths (12/96)
    assert (feat[:, COL["tempo_30"]] == 2).all()                  # 100 bpm ~ 90 -> class 2
    assert (frame == np.round(score.notes["onset_beat"] * FRAMES_PER_BEAT)).all()
    for k in MARK_CLASSES:                                         # no marks given: all zero
        if k in COL:
            assert (feat[:, COL[k]] == 0).all(), k


def test_log_bucket():
    b = np.array([0.0, 0.49, 0.5, 0.99, 1.0, 2.0, 3.9, 4.0, 1000.0, np.inf])
    assert log_bucket(b).tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 7, 8]
    assert log_bucket(b, 10).tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 9, 10]


def test_beat_and_group_indices():
    onset = np.array([1.0, 1.0, 1.5, 2.0, 4.25, 4.25, 4.5])   # starts on beat 1 (after an upbeat bar line)
    assert beat_index(onset).tolist() == [0, 0, 0, 1, 3, 3, 3]
    assert beat_first(onset).tolist() == [True, False, False, True, True, False, False]
    assert group_first(onset).tolist() == [True, False, True, True, True, False, True]
    assert beat_index(np.zeros(0)).tolist() == []


def test_chord_rank():
    f = features(make_notes([(0, 1, 48), (0, 1, 64), (0, 1, 67), (0, 1, 72),   # chord: bass, inner, inner, top
                             (1, 1, 60),                                    # alone
                             (2, 1, 55), (2, 1, 76)]))                      # dyad: bass, top
    assert f["chord_rank"].tolist() == [2, 3, 3, 1, 0, 2, 1]


@pytest.mark.parametrize("ts, onsets, expect", [
    ((4, 4), [0, 1, 2, 3, 0.5, 2.25, 4], [0, 2, 1, 2, 3, 4, 0]),     # downbeat, beats, half bar, eighth, 16th
    ((3, 4), [0, 1, 2, 1.5, 3], [0, 2, 2, 3, 0]),                   # no middle of the bar in 3/4
    ((6, 8), [0, 1.5, 3, 4.5], [0, 1, 0, 1]),                        # two dotted-quarter beats
])
def test_metric_strength(ts, onsets, expect):
    f = features(make_notes([(on, 0.25, 60 + i) for i, on in enumerate(onsets)], ts=ts))
    order = np.argsort(np.argsort(onsets, kind="stable"), kind="stable")    # rows are sorted by onset
    assert f["metric"][order].tolist() == expect


def test_metric_of_6_8_eighths_is_weaker_than_its_beats():
    f = features(make_notes([(on, 0.5, 60) for on in (0, 0.5, 1.0, 1.5, 2.0, 2.5)], ts=(6, 8)))
    assert f["metric"][[0, 3]].tolist() == [0, 1] and (f["metric"][[1, 2, 4, 5]] >= 3).all()


def test_distances_ahead_and_position_in_the_piece():
    score = make_score(16)
    f = features(score.notes)
    onset = score.notes["onset_beat"]
    assert np.all(np.diff(f["to_end"].astype(int)) <= 0) and f["to_end"][0] > f["to_end"][-1]
    assert f["to_end"][-1] == 1                        # the last eighth: half a beat to the end
    assert (f["to_fermata"] == 10).all() and (f["to_section_end"] == 10).all()   # none in the score
    assert np.all(np.diff(f["piece_pos"].astype(int)) >= 0)
    assert f["piece_pos"][0] == 0 and f["piece_pos"][-1] == 9
    assert (f["since_section"] == log_bucket(onset, 10)).all()   # one section from the start
    assert (f["to_rest"] == 7).all()                               # never a rest (none ahead: last class)


def test_fermata_and_rest_distances():
    rows = [(b, 1.0, 72) for b in range(12) if b not in (4, 5)] + [(b, 1.0, 48) for b in range(12) if b not in (4, 5)]
    notes = make_notes(rows)                             # a two-beat rest at beats 4-5
    marks = empty_marks(len(notes))
    marks["fermata"][notes["onset_beat"] == 9] = 1
    marks["section_end"][notes["bar_onset_beat"] == 4] = 1   # bar 2 (beats 4-8) ends with a double bar
    f = features(notes, marks)
    at = {b: np.flatnonzero(notes["onset_beat"] == b)[0] for b in np.unique(notes["onset_beat"])}
    assert [int(f["to_rest"][at[b]]) for b in (0, 2, 3)] == [4, 3, 2]   # rest at 4: 4, 2, 1 beats ahead
    assert f["to_rest"][at[6]] == 7                                     # no rest after it
    assert [int(f["to_fermata"][at[b]]) for b in (0, 8, 9, 10)] == [5, 2, 0, 10]   # 9, 1, 0 beats, none
    assert f["fermata"][at[9]] == 1 and f["fermata"].sum() == 2
    assert f["to_section_end"][at[0]] in (4, 5) and (f["to_section_end"][[at[8], at[11]]] == 10).all()


def test_section_end_distances():
    notes = make_notes([(0.5 * k, 0.5, 72) for k in range(24)])          # eighths over three bars
    marks = empty_marks(len(notes))
    marks["section_end"][notes["bar_onset_beat"] == 4] = 1             # bar 2 (beats 4-8) ends with a double bar
    f = features(notes, marks)
    at = {float(b): i for i, b in enumerate(notes["onset_beat"])}
    # 7.5, 3 and 1.5 beats to the double bar; after it, none
    assert [int(f["to_section_end"][at[b]]) for b in (0.5, 5.0, 6.5, 8.0, 11.5)] == [4, 3, 2, 10, 10]
    # beats since the section start: the piece's start, then the double bar
    assert [int(f["since_section"][at[b]]) for b in (0.0, 3.5, 7.5, 8.0, 8.5, 11.5)] == [0, 3, 4, 0, 1, 3]


def test_marks_become_feature_columns():
    notes = make_score(4).notes
    marks = empty_marks(len(notes))
    rng = np.random.default_rng(0)
    for k, n in MARK_CLASSES.items():
        marks[k] = rng.integers(0, n, len(notes))
    f = features(notes, marks)
    for k in MARK_CLASSES:
        if k in COL:
            assert np.array_equal(f[k], marks[k]), k
    assert "section_end" not in COL      # it enters through to_section_end and since_section


def test_beat_context_shape_rests_and_locality():
    score = make_score(48)
    n = score.notes.copy()
    n = n[(n["onset_beat"] < 20) | (n["onset_beat"] >= 22)]          # beats 20 and 21 are rests
    bpm = np.full(len(n), 100.0)
    ctx = beat_context(n, bpm)
    assert ctx.shape == (48, BEAT_FEATURES) and ctx.dtype == np.float32 and np.isfinite(ctx).all()
    assert ctx[20, 14] == 1 and ctx[21, 14] == 1 and ctx[np.r_[0:20, 22:48], 14].sum() == 0
    assert ctx[20, 0] == 0 and ctx[19, 0] > 0                        # no notes counted in a rest beat
    assert ctx[0, 15] == 1 and ctx[1, 15] == 0                       # a bar line on beat 0, not on beat 1
    assert ctx[0, 17] == 0 and ctx[-1, 17] == 1
    assert beat_context(n, bpm, empty_marks(len(n))).tolist() == ctx.tolist()
    # a marking at beat 40 changes row 40 only
    marks = empty_marks(len(n))
    marks["fermata"][n["onset_beat"] == 40] = 1
    marks["accent"][n["onset_beat"] == 40.5] = 1
    changed = np.flatnonzero((beat_context(n, bpm, marks) != ctx).any(1))
    assert changed.tolist() == [40]
    # a new pitch at beat 41 changes that beat (and the bar's summary, the next beat's bass change)
    m = n.copy()
    m["pitch"][np.flatnonzero(m["onset_beat"] == 41)[0]] -= 5
    changed = np.flatnonzero((beat_context(m, bpm) != ctx).any(1))
    assert 41 in changed and set(changed.tolist()) <= {40, 41, 42, 43}
    # a louder note at beat 42 changes its bar's rows at most
    m = n.copy()
    m["velocity_written"][m["onset_beat"] == 42] = 127
    changed = np.flatnonzero((beat_context(m, bpm) != ctx).any(1))
    assert 42 in changed and set(changed.tolist()) <= {40, 41, 42, 43}


def test_beat_context_section_end_and_written_tempo():
    n = make_score(16).notes
    marks = empty_marks(len(n))
    marks["section_end"][n["bar_onset_beat"] == 4] = 1              # bar 2 (beats 4-7) ends a section
    bpm = np.where(n["onset_beat"] < 8, 100.0, 200.0)
    ctx = beat_context(n, bpm, marks)
    assert np.flatnonzero(ctx[:, 16]).tolist() == [7]
    np.testing.assert_allclose(ctx[:8, 21], 0.0, atol=1e-6)
    np.testing.assert_allclose(ctx[8:, 21], 1.0, atol=1e-6)       # log2(200 / 100)


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
    others = [i for i in range(len(FEATURE_NAMES)) if i not in (k, p)]
    assert (up[:, others] == feat[:, others]).all()


def test_beat_context_marked_pedal():
    """Columns 24-26: the share of a beat's notes under a marked pedal (carried over beats without
    onsets), a press in the beat, and whether the score marks any pedal at all."""
    n = make_score(16).notes
    n = n[(n["onset_beat"] < 9) | (n["onset_beat"] >= 10)]          # beat 9 has no onset
    bpm = np.full(len(n), 100.0)
    assert beat_context(n, bpm)[:, 24:27].sum() == 0               # no marks: no pedal, and none marked
    marks = empty_marks(len(n))
    under = (n["onset_beat"] >= 4) & (n["onset_beat"] < 10.5)
    marks["pedal"][under] = 1
    marks["pedal"][n["onset_beat"] == 4] = 2
    marks["pedal"][n["onset_beat"] == 6] = 2                        # a change
    ctx = beat_context(n, bpm, marks)
    assert np.flatnonzero(ctx[:, 24] == 1).tolist() == [4, 5, 6, 7, 8, 9]   # beat 9 carries beat 8's
    assert 0 < ctx[10, 24] < 1 and ctx[11, 24] == 0                  # half of beat 10's notes
    assert np.flatnonzero(ctx[:, 25]).tolist() == [4, 6]
    assert (ctx[:, 26] == 1).all()


def test_harmony_change_classes():
    """Each onset group against the pitch classes struck in the quarter before it."""
    rows = [(0.0, 1.0, 60), (0.0, 1.0, 64), (0.0, 1.0, 67),      # C major after nothing: 3
            (1.0, 1.0, 72), (1.0, 1.0, 76),                       # C and E again: 0
            (2.0, 1.0, 65), (2.0, 1.0, 69),                       # F (E-F a semitone) and A: 2
            (3.0, 1.0, 62),                                       # D: new, no semitone to F / A: 1
            (6.0, 1.0, 62)]                                       # after two silent beats: 3
    n = make_notes(rows)
    assert harmony_change(n).tolist() == [3, 3, 3, 0, 0, 2, 2, 1, 3]
    # the same chord transposed keeps its classes: the feature reads intervals, not keys
    t = n.copy()
    t["pitch"] += 5
    assert harmony_change(t).tolist() == harmony_change(n).tolist()
    f, _ = score_features(n, np.full(len(n), 100.0))
    assert f[:, COL["harmony"]].tolist() == [3, 3, 3, 0, 0, 2, 2, 1, 3]
    assert harmony_change(n[:0]).tolist() == []


def test_beat_context_harmony_columns():
    """Columns 27-32: the beat's share of notes with new / clashing pitch classes or after silence,
    its pitch classes, its semitone-adjacent ones, and a move of the bass's pitch class."""
    rows = [(0.0, 1.0, 48), (0.0, 1.0, 64),                       # C E
            (1.0, 1.0, 36), (1.0, 1.0, 64),                       # C an octave down: no bass pc move
            (2.0, 0.25, 60), (2.25, 0.25, 61), (2.5, 0.25, 62), (2.75, 0.25, 63),   # a chromatic run
            (3.0, 1.0, 41), (3.0, 1.0, 69)]                       # F A
    n = make_notes(rows)
    ctx = beat_context(n, np.full(len(n), 100.0))
    assert ctx[0, 29] == 1 and ctx[1, 27:30].tolist() == [0, 0, 0]
    assert ctx[2, 27:29].tolist() == [0, 0.75]                    # C# D D# new, each a semitone from a note before
    # the note features' harmony column, passed in, gives the same columns
    f, _ = score_features(n, np.full(len(n), 100.0))
    assert np.array_equal(beat_context(n, np.full(len(n), 100.0), harmony=f[:, COL["harmony"]]), ctx)
    np.testing.assert_allclose(ctx[:, 30], [2 / 12, 2 / 12, 4 / 12, 2 / 12])
    np.testing.assert_allclose(ctx[:, 31], [0, 0, 3 / 12, 0])
    assert ctx[:, 32].tolist() == [0, 0, 0, 1]                    # C, C, C (run's lowest), F: pc moves at 3
