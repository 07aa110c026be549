"""Sustain (81 classes: 4 segments x 3 depths per onset group) and soft pedal, both directions."""
from __future__ import annotations

import numpy as np
import pytest

from render.encoding import encode, encode_aligned, onset_groups, roundtrip_report
from render.pedal import (LEVELS, N_SUSTAIN, SEGMENTS, PedalStream, decode_pedal, encode_pedal,
                          pedal_down_fraction, pedal_for_take, sustain_levels)
from render.performance import PEDAL_DTYPE
from tests.unit.render.conftest import BACH_PRELUDE, MOZART_KV282_1

GROUPS = np.array([0.0, 1.0, 2.0, 3.0, 4.0])     # onset groups, one second apart
ENDS = np.array([0.5, 1.5, 2.5, 3.5, 5.0])       # the last group's notes end at 5 s


def events(*rows):
    return np.array(list(rows), PEDAL_DTYPE)


# Down just after the first onset, lifted at the harmony change of group 2 and pressed again
# (legato pedal), lifted in the middle of the last group.
LEGATO = events((0.1, 64, 127), (2.05, 64, 0), (2.3, 64, 127), (4.5, 64, 0))


def lifts(ev, t):
    """Times in ``t`` where the sustain goes from down (>= 96) to not down."""
    down = pedal_down_fraction(ev, t) >= 0.75
    return t[1:][down[:-1] & ~down[1:]]


def test_classes_are_base_3_digits_first_segment_first():
    assert (N_SUSTAIN, SEGMENTS, LEVELS) == (81, 4, 3)
    lv = sustain_levels(np.arange(N_SUSTAIN))
    assert lv.shape == (81, 4) and lv.min() == 0 and lv.max() == 2
    assert np.array_equal(lv @ (3 ** np.arange(3, -1, -1)), np.arange(81))
    assert sustain_levels([0, 80, 26, 78]).tolist() == [[0, 0, 0, 0], [2, 2, 2, 2], [0, 2, 2, 2], [2, 2, 2, 0]]


def test_legato_pedal_round_trip():
    sus, soft = encode_pedal(GROUPS, ENDS, LEGATO)
    # group 0: up until 0.1 (first segment), then down; group 2: lift at 2.05 and press at 2.3
    # (segments 0 and 1 up); group 4: lifted at 4.5, the middle of [4, 5)
    assert sus.tolist() == [26, 80, 8, 80, 72]
    assert soft.tolist() == [0, 0, 0, 0, 0]             # no soft pedal events at all
    ev, prev = decode_pedal(GROUPS, 5.0, sus, soft)
    assert ev.dtype == PEDAL_DTYPE and np.all(np.diff(ev["time_sec"]) >= 0)
    cc64 = ev[ev["number"] == 64]
    assert cc64[["time_sec", "value"]].tolist() == [(0.0, 0), (0.25, 127), (2.0, 0), (2.5, 127), (4.5, 0)]
    assert ev[ev["number"] == 67][["time_sec", "value"]].tolist() == [(0.0, 0)]
    assert prev == (0, 0)
    # each press and lift moves by at most a quarter of its inter-onset interval (1 s here)
    for orig, back in zip(LEGATO["time_sec"], cc64["time_sec"][1:]):
        assert abs(orig - back) <= 0.25 + 1e-9
    # the decoded pedal encodes to the same classes
    assert encode_pedal(GROUPS, ENDS, ev)[0].tolist() == sus.tolist()


def test_half_pedal_short_lifts_and_soft():
    ev = events((0.0, 64, 127), (1.40, 64, 10), (1.45, 64, 127), (2.6, 64, 60),
                (1.5, 67, 100), (3.2, 67, 0))
    sus, soft = encode_pedal(GROUPS, ENDS, ev[np.random.default_rng(0).permutation(len(ev))])  # unsorted
    lv = sustain_levels(sus)
    assert lv[1].tolist() == [2, 0, 2, 2]        # a 50 ms lift shows: the segment's lowest depth
    assert lv[2].tolist() == [2, 2, 1, 1]        # half pedal (CC 60) from 2.6 s
    assert lv[3].tolist() == [1, 1, 1, 1]
    assert soft.tolist() == [0, 0, 1, 1, 0]      # soft pedal at each group's onset
    back, _ = decode_pedal(GROUPS, 5.0, sus, soft)
    assert back[back["number"] == 67][["time_sec", "value"]].tolist() == [(0.0, 0), (2.0, 127), (4.0, 0)]
    assert set(back["value"][back["number"] == 64].tolist()) <= {0, 64, 127}
    assert 64 in back["value"][back["number"] == 64]


def test_empty_and_one_sided_pedal_arrays():
    zero = np.zeros(5, np.int64)
    for pedal in (None, np.zeros(0, PEDAL_DTYPE)):
        sus, soft = encode_pedal(GROUPS, ENDS, pedal)
        assert sus.tolist() == zero.tolist() and soft.tolist() == zero.tolist()
    sus, soft = encode_pedal(np.zeros(0), np.zeros(0), LEGATO)
    assert len(sus) == len(soft) == 0
    # sustain without any soft pedal event, and soft without any sustain event
    sus, soft = encode_pedal(GROUPS, ENDS, LEGATO)
    assert soft.tolist() == [0] * 5 and sus.max() == 80
    sus, soft = encode_pedal(GROUPS, ENDS, events((0.5, 67, 127)))
    assert sus.tolist() == [0] * 5 and soft.tolist() == [0, 1, 1, 1, 1]
    ev, prev = decode_pedal(np.zeros(0), 0.0, np.zeros(0, int), np.zeros(0, int), prev=(127, 0))
    assert len(ev) == 0 and ev.dtype == PEDAL_DTYPE and prev == (127, 0)
    # no pedal at all decodes to "up" once, then nothing
    ev, prev = decode_pedal(GROUPS, 5.0, zero, zero)
    assert ev[["time_sec", "number", "value"]].tolist() == [(0.0, 64, 0), (0.0, 67, 0)] and prev == (0, 0)
    # and encoding notes without pedal gives zeros in the note encoding
    enc, _, _ = encode(GROUPS, np.full(5, 60.0), GROUPS, np.full(5, 0.5), np.full(5, 64), pedal=None)
    assert (enc["sustain"] == 0).all() and (enc["soft"] == 0).all()


def test_random_pedals_give_classes_in_range_and_reencode_the_same():
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.05, 1.0, 200))
    ends = t + 0.3
    n = 400
    ev = np.zeros(n, PEDAL_DTYPE)
    ev["time_sec"] = rng.uniform(-1, t[-1] + 1, n)
    ev["number"] = rng.choice([64, 67], n)
    ev["value"] = rng.integers(0, 128, n)
    sus, soft = encode_pedal(t, ends, ev)
    assert sus.dtype == soft.dtype == np.int64 and len(sus) == len(soft) == 200
    assert sus.min() >= 0 and sus.max() < N_SUSTAIN and set(soft.tolist()) <= {0, 1}
    assert len(set(sus.tolist())) > 20
    back, _ = decode_pedal(t, ends[-1], sus, soft)
    s2, f2 = encode_pedal(t, ends, back)
    assert np.array_equal(s2, sus) and np.array_equal(f2, soft)


def test_decode_emits_changes_only_and_carries_prev_across_chunks():
    sus = np.array([80, 80, 80, 26, 80, 80, 0, 0, 72, 80])
    soft = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1])
    t = np.arange(10.0)
    whole, prev = decode_pedal(t, 10.0, sus, soft)
    for k in (64, 67):      # consecutive events of one pedal always change its value
        v = whole["value"][whole["number"] == k]
        assert np.all(v[1:] != v[:-1]), k
    assert len(whole[whole["number"] == 64]) == 7     # 127 at 0, lift 3.0, 3.25, 6.0, 8.0, 8.5, 9.0
    parts, p = [], (-1, -1)
    for a, b in ((0, 2), (2, 3), (3, 7), (7, 10)):
        ev, p = decode_pedal(t[a:b], float(b), sus[a:b], soft[a:b], prev=p)
        parts.append(ev)
    assert np.concatenate(parts).tolist() == whole.tolist() and p == prev
    # a chunk that keeps what is in force sends nothing
    ev, p2 = decode_pedal(t[:2], 2.0, sus[:2], soft[:2], prev=(127, 0))
    assert len(ev) == 0 and p2 == (127, 0)


def test_note_encoding_carries_the_group_pedal():
    onset = np.array([0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0])
    t = np.array([0.0, 0.01, 1.0, 2.0, 2.0, 3.0, 4.0])
    enc, _, _ = encode(onset, np.full(7, 60.0), t, np.full(7, 0.5), np.full(7, 64), pedal=LEGATO)
    grp, first = onset_groups(onset)
    for k in range(len(first)):    # every note of a chord has its group's classes
        assert len(set(enc["sustain"][grp == k].tolist())) == 1
    assert enc["sustain"][first].tolist()[1:4] == [80, 8, 80]


@pytest.mark.data
def test_pedal_round_trip_report_on_a_real_performance(unpacked):
    r = roundtrip_report(unpacked(MOZART_KV282_1))
    assert r["pedal_down_agreement"] > 0.85, r
    assert 0.2 < r["pedal_down_fraction"] < 0.8 and r["pedal_lifts"] > 100
    assert r["pedal_lift_err_median_ms"] < 100
    assert r["clip_rate"]["sustain"] == 0 and r["clip_rate"]["soft"] == 0


@pytest.mark.data
@pytest.mark.parametrize("match, within", [(BACH_PRELUDE, 0.95), (MOZART_KV282_1, 0.85)])
def test_lifts_of_real_performances_move_by_a_quarter_of_their_interval(aligned, match, within):
    perf = aligned(match)
    idx, enc, _, _, _, _ = encode_aligned(perf)
    notes, played = perf.score.notes[idx], perf.notes[perf.match_index[idx]]
    grp, first = onset_groups(notes["onset_beat"])
    w = (~notes["is_grace"]) + 1e-6      # a group's time, as the encoder takes it: its non-grace notes
    t = np.bincount(grp, played["onset_sec"] * w, len(first)) / np.bincount(grp, w, len(first))
    end = float(np.max(played["onset_sec"] + played["duration_sec"]))
    ev, _ = decode_pedal(t, end, enc["sustain"][first], enc["soft"][first])
    grid = np.arange(t[0], end, 0.005)
    a = pedal_down_fraction(perf.pedal, grid) >= 0.75
    b = pedal_down_fraction(ev, grid) >= 0.75
    assert np.mean(a == b) > 0.85
    orig, back = lifts(perf.pedal, grid), lifts(ev, grid)
    assert len(orig) > 50 and abs(len(back) - len(orig)) < 0.25 * len(orig)
    k = np.clip(np.searchsorted(back, orig), 1, len(back) - 1)
    err = np.minimum(np.abs(back[k] - orig), np.abs(back[k - 1] - orig))
    ioi = np.diff(np.append(t, end))[np.clip(np.searchsorted(t, orig, side="right") - 1, 0, len(t) - 1)]
    assert np.mean(err <= ioi / 4 + 0.01) >= within, np.percentile(err / ioi, [50, 90])
    # the soft pedal at each onset comes back exactly
    s = perf.pedal[perf.pedal["number"] == 67]
    if len(s):
        k = np.searchsorted(s["time_sec"], t, side="right") - 1
        truth = np.where(k >= 0, s["value"][np.maximum(k, 0)] >= 64, False)
        assert np.array_equal(enc["soft"][first].astype(bool), truth)


@pytest.mark.data
def test_streamed_pedal_equals_the_whole_take_in_any_chunking(aligned):
    """The worker sends each chunk's pedal events with its notes; chords split over two chunks
    are joined, and the events are those of the whole take."""
    perf = aligned(MOZART_KV282_1)
    idx, enc, _, _, _, _ = encode_aligned(perf)
    played = perf.notes[perf.match_index[idx]]
    take = np.zeros(len(idx), [("index", "i4"), ("onset_sec", "f8"), ("duration_sec", "f8"),
                               ("sustain", "i2"), ("soft", "i2")])
    take["index"], take["onset_sec"], take["duration_sec"] = idx, played["onset_sec"], played["duration_sec"]
    take["sustain"], take["soft"] = enc["sustain"], enc["soft"]
    whole = pedal_for_take(perf.score.notes["onset_beat"], take)
    assert (whole["number"] == 64).sum() > 100 and np.all(np.diff(whole["time_sec"]) >= 0)
    u = perf.score.notes["onset_beat"][idx]
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        edges = np.unique(np.r_[0, np.cumsum(rng.integers(1, 9, len(idx))), len(idx)].clip(0, len(idx)))
        stream, parts = PedalStream(), []
        for a, b in zip(edges[:-1], edges[1:]):
            parts.append(stream.feed(u[a:b], take["onset_sec"][a:b], take["duration_sec"][a:b],
                                     take["sustain"][a:b], take["soft"][a:b]))
        parts.append(stream.close())
        got = np.concatenate(parts)
        assert np.array_equal(got["number"], whole["number"]) and np.array_equal(got["value"], whole["value"])
        np.testing.assert_allclose(got["time_sec"], whole["time_sec"], atol=1e-9)
