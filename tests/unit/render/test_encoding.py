"""The performance encoding (model v2): GP tempo, one log-tempo class per beat, streaming decode."""
from __future__ import annotations

import numpy as np
import pytest

from render.encoding import (ENCODED_DTYPE, RANGES, TEMPO_STEPS_PER_OCTAVE, DecodeState, beat_starts, decode,
                             encode, encode_aligned, gp_tempo_curve, marked_tempo, median_tempo_rounded,
                             onset_groups, tempo_ratio)
from tests.unit.render.conftest import BACH_PRELUDE, MOZART_KV282_1


def perform(onset, bpm_of, jitter=0.0, seed=0):
    """Performed onsets (s) of score onsets played at the tempo ``bpm_of(score position)``."""
    rng = np.random.default_rng(seed)
    u = np.unique(onset)
    bpm = bpm_of(u)
    t = np.concatenate([[0.0], np.cumsum(np.diff(u) * 60.0 / bpm[:-1])])
    return t[np.searchsorted(u, onset)] + rng.normal(0, jitter, len(onset))


def synthetic(n_beats=64, seed=0):
    """Three-note chords on every beat and melody eighths, with a rubato tempo arch and jitter."""
    rng = np.random.default_rng(seed)
    onset = np.sort(np.concatenate([np.arange(n_beats, dtype=float).repeat(3), np.arange(n_beats) + 0.5]))
    t = perform(onset, lambda u: 90 + 15 * np.sin(u / n_beats * np.pi), 0.01, seed)
    dur = np.full(len(t), 0.3)
    vel = rng.integers(30, 100, len(t))
    return onset, t, dur, vel


def beat_of(onset):
    return np.floor(np.asarray(onset) + 1e-6).astype(int)


def test_onset_groups():
    grp, first = onset_groups(np.array([0, 0, 0.5, 1, 1, 1]))
    assert grp.tolist() == [0, 0, 1, 2, 2, 2] and first.tolist() == [0, 2, 3]


def test_beat_starts_on_quarter_boundaries_and_across_chunks():
    u = np.array([0.0, 0.5, 1.0, 1.75, 3.25, 4.0])
    assert beat_starts(u).tolist() == [True, False, True, False, True, True]
    assert beat_starts(np.array([2.5, 3.0]), prev_u=2.0).tolist() == [False, True]
    assert beat_starts(np.array([2.0]), prev_u=1.5).tolist() == [True]


def test_gp_tempo_recovers_a_constant_tempo():
    x = np.arange(0, 40, 0.5)
    mean, slope = gp_tempo_curve(x, x * 0.5 + 1.0)  # 120 bpm
    assert np.allclose(60.0 / slope, 120.0, atol=0.5)
    assert np.allclose(mean, x * 0.5 + 1.0, atol=1e-3)


def test_decode_inverts_encode_within_quantisation():
    onset, t, dur, vel = synthetic()
    w = np.full(len(onset), 90.0)
    enc, start, report = encode(onset, w, t, dur, vel)
    assert enc.dtype == ENCODED_DTYPE and enc.dtype.names == (
        "velocity", "duration_100", "deviation_100", "tempo_log_50", "sustain", "soft")
    for k, (lo, hi) in RANGES.items():
        assert enc[k].min() >= lo and enc[k].max() <= hi, k
    assert all(v == 0.0 for v in report.clip_rate.values()) and report.n_notes == len(onset)
    assert (enc["sustain"] == 0).all() and (enc["soft"] == 0).all()   # no pedal given
    on, du, tempo, _ = decode(onset, w, enc)
    err_ms = np.abs(on + start - t) * 1000
    assert np.median(err_ms) < 5 and err_ms.max() < 10   # half of 1/100 beat at <= 105 bpm: 2.9 ms
    assert (enc["velocity"] == vel).all()
    assert np.allclose(du, dur, atol=0.005)
    # The decoded tempo follows the arch (90 at the ends, 105 in the middle), not the reference 90.
    q = len(tempo) // 4
    assert tempo[q:3 * q].mean() > tempo[:q // 2].mean() + 8 and tempo[q:3 * q].mean() > 100


def test_one_tempo_class_per_beat_read_from_its_first_group():
    onset, t, dur, vel = synthetic(32)
    w = np.full(len(onset), 90.0)
    w[(onset % 1) == 0.5] = 45.0          # a reference that changes inside the beat: the beat start's counts
    enc, start, _ = encode(onset, w, t, dur, vel)
    beat = beat_of(onset)
    first = np.r_[True, beat[1:] != beat[:-1]]
    for b in np.unique(beat):             # every note of a beat carries the beat's class
        assert len(set(enc["tempo_log_50"][beat == b].tolist())) == 1, b
    on, du, tempo, _ = decode(onset, w, enc)
    expect = (w * 2.0 ** (enc["tempo_log_50"] / TEMPO_STEPS_PER_OCTAVE))[first][np.cumsum(first) - 1]
    np.testing.assert_allclose(tempo, expect, rtol=1e-9)
    assert all(np.ptp(tempo[beat == b]) == 0 for b in np.unique(beat))
    # Only each beat's first group is read: whatever the other notes say, decoding is the same.
    scrambled = enc.copy()
    scrambled["tempo_log_50"][~first] = np.random.default_rng(1).integers(-50, 50, (~first).sum())
    on2, du2, tempo2, _ = decode(onset, w, scrambled)
    assert np.array_equal(on2, on) and np.array_equal(tempo2, tempo) and np.array_equal(du2, du)
    assert np.abs(on + start - t).max() < 0.015


def test_a_ritardando_stays_in_the_target():
    """v2's point: the tempo class is relative to g * W, so arcs and a final rit. are learnt."""
    onset = np.sort(np.concatenate([np.arange(64.0).repeat(2), np.arange(64) + 0.5]))

    def factor(u):  # to 0.625 of the marking
        return np.where(u < 48, 1.0, 1 - 0.4 * (u - 48) / 16)

    t = perform(onset, lambda u: 100.0 * factor(u))
    w = np.full(len(onset), 100.0)
    g = tempo_ratio(onset, t, w)
    assert g == pytest.approx(1.0, abs=0.01)
    enc, start, report = encode(onset, g * w, t, np.full(len(t), 0.2), np.full(len(t), 64))
    cls = enc["tempo_log_50"][np.r_[True, np.diff(beat_of(onset)) > 0]]   # one per beat
    assert np.all(np.abs(cls[4:44]) <= 1)
    want = TEMPO_STEPS_PER_OCTAVE * np.log2(factor(np.arange(64.0) + 0.25))   # the beat's mean tempo
    assert np.all(np.abs(cls[50:62] - want[50:62]) <= 3), (cls[50:], want[50:].round())
    # slowing down beat after beat (the last beat is the GP's free end) to the final tempo
    assert np.all(np.diff(cls[48:-1]) <= 1) and cls[-3:].min() < -30
    on, _, _, _ = decode(onset, g * w, enc)
    assert np.abs(on + start - t).max() < 0.01 and report.clip_rate["tempo_log_50"] == 0


def test_tempo_ratio_of_a_performance_at_twice_the_marking():
    onset = np.sort(np.concatenate([np.arange(48.0).repeat(2), np.arange(48) + 0.5]))
    w = np.full(len(onset), 120.0)
    assert tempo_ratio(onset, perform(onset, lambda u: np.full(len(u), 240.0)), w) == pytest.approx(2.0, rel=1e-3)
    t = perform(onset, lambda u: np.full(len(u), 240.0), jitter=0.01)
    assert tempo_ratio(onset, t, w) == pytest.approx(2.0, rel=0.02)
    assert tempo_ratio(onset, t, w / 2) == pytest.approx(4.0, rel=0.02)
    # at the reference g * W the classes sit around 0
    enc, _, _ = encode(onset, 2.0 * w, t, np.full(len(t), 0.1), np.full(len(t), 64))
    assert np.abs(np.median(enc["tempo_log_50"])) <= 1


def test_streaming_decode_equals_decoding_at_once():
    onset, t, dur, vel = synthetic(32)
    w = np.full(len(onset), 90.0)
    enc, _, _ = encode(onset, w, t, dur, vel)
    whole = decode(onset, w, enc)
    # chunk edges: inside a chord (1: the second note of the first chord), inside a beat (3: the
    # eighth after that chord), on a beat start (8), then ragged sizes
    edges = [0, 1, 3, 8, 9, 13, 22, 23, 47, 60, 61, 90, len(onset)]
    assert onset[0] == onset[1] and onset[2] != onset[3] and beat_of(onset)[2] == beat_of(onset)[3]
    assert beat_of(onset)[7] != beat_of(onset)[8]
    state, parts = None, []
    for a, b in zip(edges[:-1], edges[1:]):
        on, du, tempo, state = decode(onset[a:b], w[a:b], enc[a:b], state)
        parts.append((on, du, tempo))
    assert isinstance(state, DecodeState) and state.onset_beat == onset[-1]
    for k in range(3):
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts]), whole[k], atol=1e-9, rtol=0)
    assert state.ideal_sec == pytest.approx(whole[3].ideal_sec) and state.tempo_bpm == whole[3].tempo_bpm


def test_clipping_is_reported():
    onset, t, dur, vel = synthetic()
    enc, _, report = encode(onset, np.full(len(onset), 400.0), t, dur * 40, vel)  # 2 octaves too fast
    assert report.clip_rate["tempo_log_50"] > 0.9 and report.clip_rate["duration_100"] > 0.5
    assert (enc["tempo_log_50"] == -50).all() and enc["duration_100"].max() == 800
    _, _, ok = encode(onset, np.full(len(onset), 90.0), t, dur, vel)
    assert ok.clip_rate["tempo_log_50"] == 0.0


def test_marked_tempo():
    nan = np.nan
    assert marked_tempo(np.array([nan, 60.0, 60.0, 120.0])).tolist() == [60, 60, 60, 120]
    assert marked_tempo(np.array([nan, nan])).tolist() == [100, 100]
    assert marked_tempo(np.array([nan, 0.0]), default_bpm=72).tolist() == [72, 72]


def test_encode_needs_a_note():
    with pytest.raises(ValueError):
        encode(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))


def test_median_tempo_rounded():
    onset, t, _, _ = synthetic()
    assert median_tempo_rounded(onset, t) in (90.0, 120.0)


@pytest.mark.data
@pytest.mark.parametrize("match", [BACH_PRELUDE, MOZART_KV282_1])
def test_round_trip_on_real_match_files(aligned, match):
    perf = aligned(match)
    idx, enc, ref, g, start, report = encode_aligned(perf)
    notes = perf.score.notes[idx]
    played = perf.notes[perf.match_index[idx]]
    assert len(idx) == perf.matched.sum() > 500 and enc.dtype == ENCODED_DTYPE
    for k, (lo, hi) in RANGES.items():
        assert enc[k].min() >= lo and enc[k].max() <= hi, k
    # the reference is g * W: W the marking (none in these match files: the default 100 bpm)
    np.testing.assert_allclose(ref, g * marked_tempo(perf.score.notes["tempo_bpm"])[idx])
    assert 0.2 < g < 3 and report.clip_rate["tempo_log_50"] < 0.02
    on, du, tempo, _ = decode(notes["onset_beat"], ref, enc)
    err = np.abs(on + start - played["onset_sec"]) * 1000
    assert np.median(err) < 10 and np.percentile(err, 95) < 30, (np.median(err), np.percentile(err, 95))
    assert (enc["velocity"] == played["velocity"]).all()
    assert np.median(np.abs(du - played["duration_sec"])) < 0.01
    assert enc["sustain"].max() > 0 and enc["soft"].max() == 1     # both pedals are encoded
    # tempo: constant over each beat, the beat's first group's class
    beat = beat_of(notes["onset_beat"])
    first = np.r_[True, beat[1:] != beat[:-1]]
    expect = (ref * 2.0 ** (enc["tempo_log_50"] / TEMPO_STEPS_PER_OCTAVE))[first][np.cumsum(first) - 1]
    np.testing.assert_allclose(tempo, expect, rtol=1e-9)
    # streaming in chunks of random sizes gives the same notes
    rng = np.random.default_rng(0)
    edges = np.unique(np.r_[0, np.cumsum(rng.integers(1, 40, len(idx))), len(idx)].clip(0, len(idx)))
    state, parts = None, []
    for a, b in zip(edges[:-1], edges[1:]):
        o, _, _, state = decode(notes["onset_beat"][a:b], ref[a:b], enc[a:b], state)
        parts.append(o)
    np.testing.assert_allclose(np.concatenate(parts), on, atol=1e-9, rtol=0)


@pytest.mark.data
def test_the_beat_tempo_target_is_smooth_and_the_deviation_keeps_the_timing(aligned):
    """v2.1: the 6-beat GP leaves the tempo a curve the model can follow beat to beat (the 2-beat
    one was nearly white), and the decoded onsets stay on the performance."""
    perf = aligned(MOZART_KV282_1)
    idx, enc, ref, g, start, _ = encode_aligned(perf)
    notes = perf.score.notes[idx]
    first = np.r_[True, np.diff(beat_of(notes["onset_beat"])) > 0]

    def lag1(c):
        return np.corrcoef(c[1:], c[:-1])[0, 1]

    smooth = enc["tempo_log_50"][first].astype(float)
    played = perf.notes[perf.match_index[idx]]
    rough, _, _ = encode(notes["onset_beat"], ref, played["onset_sec"], played["duration_sec"],
                         played["velocity"], notes["is_grace"], tempo_fwhm_beat=2.0)
    rough = rough["tempo_log_50"][first].astype(float)
    assert lag1(smooth) > 0.7 and lag1(smooth) > lag1(rough) + 0.15, (lag1(smooth), lag1(rough))
    assert np.abs(np.diff(smooth)).mean() < 0.75 * np.abs(np.diff(rough)).mean()
    on, _, _, _ = decode(notes["onset_beat"], ref, enc)
    assert np.median(np.abs(on + start - played["onset_sec"])) < 0.01
