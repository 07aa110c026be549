"""The paper's performance encoding: GP tempo, sigma-delta tempo, decode inverts encode."""
from __future__ import annotations

import numpy as np
import pytest

from render.encoding import (ENCODED_DTYPE, RANGES, DecodeState, decode, encode, gp_tempo_curve,
                             median_tempo_rounded, onset_groups, roundtrip_report)


def synthetic(n_beats=64, seed=0):
    """Chords on every beat and melody eighths, played with a rubato tempo arch and jitter."""
    rng = np.random.default_rng(seed)
    onset = np.sort(np.concatenate([np.arange(n_beats, dtype=float).repeat(3), np.arange(n_beats) + 0.5]))
    bpm = 90 + 15 * np.sin(onset / n_beats * np.pi)       # a phrase arch, quarters per minute
    sec_per_beat = 60.0 / bpm
    t = np.concatenate([[0.0], np.cumsum(np.diff(onset) * sec_per_beat[:-1])])
    t = t + rng.normal(0, 0.01, len(t))
    dur = np.full(len(t), 0.3)
    vel = rng.integers(30, 100, len(t))
    return onset, t, dur, vel


def test_onset_groups():
    grp, first = onset_groups(np.array([0, 0, 0.5, 1, 1, 1]))
    assert grp.tolist() == [0, 0, 1, 2, 2, 2] and first.tolist() == [0, 2, 3]


def test_gp_tempo_recovers_a_constant_tempo():
    x = np.arange(0, 40, 0.5)
    mean, slope = gp_tempo_curve(x, x * 0.5 + 1.0)  # 120 bpm
    assert np.allclose(60.0 / slope, 120.0, atol=0.5)
    assert np.allclose(mean, x * 0.5 + 1.0, atol=1e-3)


def test_decode_inverts_encode_within_quantisation():
    onset, t, dur, vel = synthetic()
    w = np.full(len(onset), 90.0)
    enc, start, report = encode(onset, w, t, dur, vel)
    assert enc.dtype == ENCODED_DTYPE
    for k, (lo, hi) in RANGES.items():
        assert enc[k].min() >= lo and enc[k].max() <= hi
    assert all(v == 0.0 for v in report.clip_rate.values())
    on, du, tempo, _ = decode(onset, w, enc)
    err_ms = np.abs(on + start - t) * 1000
    assert np.median(err_ms) < 5 and err_ms.max() < 10   # half of 1/100 beat at <= 105 bpm: 2.9 ms
    assert (enc["velocity"] == vel).all()
    assert np.allclose(du, dur, atol=0.005)
    # The decoded tempo follows the arch (90 at the ends, 105 in the middle), not the written 90.
    q = len(tempo) // 4
    assert tempo[q:3 * q].mean() > tempo[:q // 2].mean() + 8 and tempo[q:3 * q].mean() > 100


def test_decoding_in_chunks_equals_one_pass():
    onset, t, dur, vel = synthetic(32)
    w = np.full(len(onset), 90.0)
    enc, _, _ = encode(onset, w, t, dur, vel)
    whole, _, _, _ = decode(onset, w, enc)
    state, parts = None, []
    for s in range(0, len(onset), 7):  # chunk edges fall inside chords too
        on, _, _, state = decode(onset[s:s + 7], w[s:s + 7], enc[s:s + 7], state)
        parts.append(on)
    assert isinstance(state, DecodeState)
    assert np.allclose(np.concatenate(parts), whole, atol=1e-9)


def test_clipping_is_reported():
    onset, t, dur, vel = synthetic()
    enc, _, report = encode(onset, np.full(len(onset), 200.0), t, dur * 40, vel)
    assert report.clip_rate["tempo_dev_bpm"] > 0.9 and report.clip_rate["duration_100"] > 0.5
    assert enc["tempo_dev_bpm"].min() >= -50


def test_median_tempo_rounded():
    onset, t, _, _ = synthetic()
    assert median_tempo_rounded(onset, t) in (90.0, 120.0)


@pytest.mark.data
@pytest.mark.parametrize("match", [
    "nasap/Bach/Fugue/bwv_857/Bult-ItoS02M.match.xz",
    "batik_plays_mozart/match/kv282_2.match.xz",
])
def test_round_trip_on_real_match_files(shared_data, tmp_path, match):
    import lzma
    path = tmp_path / "perf.match"
    path.write_bytes(lzma.open(shared_data / match).read())
    r = roundtrip_report(path)
    assert r["n_notes"] > 1000
    assert r["onset_err_median_ms"] <= 10 and r["onset_err_p95_ms"] <= 30, r
    assert r["velocity_exact_rate"] == 1.0


def test_local_tempo_reference_follows_sections_and_keeps_deviations_in_range():
    """A Largo-Allegro piece: one median tempo clips the tempo classes; the local reference does not."""
    from render.encoding import local_tempo_reference

    onset = np.arange(0, 96, 0.5)
    bpm = np.where(onset < 48, 60.0, 180.0) * (1 + 0.05 * np.sin(onset / 3))
    t = np.concatenate([[0.0], np.cumsum(np.diff(onset) * 60.0 / bpm[:-1])])
    ref = local_tempo_reference(onset, t)
    assert np.all(np.abs(ref[onset < 40] - 60) <= 10) and np.all(np.abs(ref[onset > 56] - 180) <= 20)
    assert np.all(ref % 10 == 0)
    dur, vel = np.full(len(t), 0.2), np.full(len(t), 64)
    _, _, single = encode(onset, np.full(len(t), median_tempo_rounded(onset, t)), t, dur, vel)
    _, _, local = encode(onset, ref, t, dur, vel)
    assert single.clip_rate["tempo_dev_bpm"] > 0.3
    assert local.clip_rate["tempo_dev_bpm"] < 0.05 and local.clip_rate["deviation_100"] < 0.05


def test_a_longer_reference_window_leaves_phrase_arcs_in_the_targets():
    """A tempo arc over 24 beats: the 8-beat reference follows it (the arc leaves the targets),
    a 32-beat one stays nearly flat (the arc stays in the tempo targets for the model to learn)."""
    from render.encoding import local_tempo_reference

    onset = np.arange(0, 96, 0.5)
    bpm = 100.0 * (1 + 0.15 * np.sin(2 * np.pi * onset / 24))
    t = np.concatenate([[0.0], np.cumsum(np.diff(onset) * 60.0 / bpm[:-1])])
    short = local_tempo_reference(onset, t, window_beat=8.0)
    long = local_tempo_reference(onset, t, window_beat=32.0)
    inner = (onset > 16) & (onset < 80)
    assert np.corrcoef(short[inner], bpm[inner])[0, 1] > 0.8
    # what stays in the targets: the performed tempo around its reference
    assert np.std(bpm[inner] - long[inner]) > 3 * np.std(bpm[inner] - short[inner])
    assert abs(np.median(long) - 100) <= 10
