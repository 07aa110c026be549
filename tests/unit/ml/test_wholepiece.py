"""ml.wholepiece: curves of a performance, comparisons, the pianists' mean and spread, plots."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ml import wholepiece as WP
from render.marks import empty_marks
from render.score import Score
from tests.unit.ml.conftest import make_score

SCORE = make_score(24)
N = SCORE.n_notes
BEATS = SCORE.notes["onset_beat"]


def performance(tempo_of_beat, velocity=None, speed: float = 1.0, marked: float = 100.0, dur_frac: float = 0.8):
    """Curves of a synthetic performance of SCORE: tempo_of_beat(b) bpm integrated over the score
    (times divided by ``speed``), durations ``dur_frac`` of the written ones at the local tempo."""
    grid = np.arange(0.0, 25.0, 0.125)
    sec = np.concatenate([[0.0], np.cumsum(np.diff(grid) * 60.0 / tempo_of_beat(grid[:-1]))]) / speed
    onset = np.interp(BEATS, grid, sec)
    dur = SCORE.notes["duration_beat"] * dur_frac * 60.0 / tempo_of_beat(BEATS) / speed
    vel = np.where(SCORE.notes["staff"] == 1, 80, 50) if velocity is None else velocity
    return WP.curves(SCORE.notes["id"], BEATS, onset, dur, vel, np.full(N, marked), SCORE.notes["is_grace"])


def arc(b):
    return 100.0 + 25.0 * np.sin(np.asarray(b) / 3.0)


def test_curves_of_a_constant_tempo_are_flat():
    c = performance(lambda b: np.full(np.shape(b), 120.0))
    assert set(WP.CURVES) <= set(c)
    keys, tempo = c["tempo"]
    assert len(keys) >= 20 and keys[0] == 0 and np.all(np.diff(keys) == 1)
    np.testing.assert_allclose(tempo, np.log2(120.0), atol=1e-3)
    assert c["median_bpm"] == pytest.approx(120.0, rel=1e-3)
    np.testing.assert_array_equal(c["velocity"][0], SCORE.notes["id"])
    # beat means of velocity: two melody notes (80) and two bass notes (50) per beat
    np.testing.assert_array_equal(c["velocity_beat"][0], np.arange(24))
    np.testing.assert_allclose(c["velocity_beat"][1], 65.0)
    # durations and onsets encoded against the performance's own speed
    assert np.abs(c["deviation_100"][1]).max() <= 1
    np.testing.assert_allclose(c["duration_100"][1], np.round(SCORE.notes["duration_beat"] * 80), atol=1)


def test_curves_follow_a_tempo_arc():
    c = performance(arc)
    keys, tempo = c["tempo"]
    truth = np.log2(arc(keys + 0.5))
    assert np.corrcoef(tempo, truth)[0, 1] > 0.95
    assert np.abs(tempo - truth).max() < 0.1


def test_compare_with_itself_gives_r_1_and_mae_0():
    c = performance(arc, velocity=40 + (np.arange(N) * 7) % 50)
    res = WP.compare(c, c)
    assert set(res) == set(WP.CURVES) | {"pedal_lifts"}
    assert math.isnan(res.pop("pedal_lifts")["f1"]) and math.isnan(res.pop("pedal_beat")["mae"])  # no pedal given
    for name, v in res.items():
        assert v["mae"] == pytest.approx(0.0, abs=1e-9), name
        assert v["r"] == pytest.approx(1.0) or (name == "deviation_100" and math.isnan(v["r"])), name


def test_tempo_mae_is_scale_matched():
    """A rendering with the same shape at twice the speed: r 1, MAE 0 (bpm at the pianist's speed)."""
    pianist = performance(arc)
    double = {**pianist, "tempo": (pianist["tempo"][0], pianist["tempo"][1] + 1.0)}  # log2: twice the bpm
    res = WP.compare(double, pianist)
    assert res["tempo"]["r"] == pytest.approx(1.0)
    assert res["tempo"]["mae"] == pytest.approx(0.0, abs=1e-9)
    unscaled = np.mean(np.abs(2.0 ** double["tempo"][1] - 2.0 ** pianist["tempo"][1]))
    assert unscaled > 50  # what an unmatched MAE would have been
    # played twice as fast end to end: the same up to the GP fit (its noise is in seconds)
    fast = performance(arc, speed=2.0)
    assert fast["median_bpm"] == pytest.approx(2 * pianist["median_bpm"], rel=0.01)
    res = WP.compare(fast, pianist)
    assert res["tempo"]["r"] > 0.99 and res["tempo"]["mae"] < 1.0
    for name in ("duration_100", "velocity", "velocity_beat"):  # encoded against each one's own speed
        assert res[name]["mae"] < 1.0, name
    # a different shape is not: a flat rendering has no r (constant) and a large MAE
    flat = WP.compare(performance(lambda b: np.full(np.shape(b), 100.0)), pianist)
    assert flat["tempo"]["mae"] > 5 and (math.isnan(flat["tempo"]["r"]) or abs(flat["tempo"]["r"]) < 0.5)


def test_compare_uses_common_keys_only():
    a = {n: (np.array([1, 2, 3, 4]), np.array([1.0, 2.0, 3.0, 4.0])) for n in WP.CURVES}
    b = {n: (np.array([0, 2, 3, 4, 9]), np.array([7.0, 2.0, 3.0, 5.0, 7.0])) for n in WP.CURVES}
    res = WP.compare(a, b)
    assert res["velocity"]["mae"] == pytest.approx(1.0 / 3)
    assert res["velocity"]["r"] == pytest.approx(np.corrcoef([2, 3, 4], [2, 3, 5])[0, 1])


def three_pianists():
    rng = np.random.default_rng(0)
    out = []
    for k, shift in enumerate((0.0, 4.0, -4.0)):
        vel = np.clip(60 + 10 * k + rng.integers(-5, 6, N), 1, 127)
        out.append(performance(lambda b, s=shift: arc(b) + s, velocity=vel, speed=1.0 + 0.1 * k))
    return out


def test_mean_curve_and_spread_of_three_pianists():
    ps = three_pianists()
    mc = WP.mean_curve(ps)
    stack = np.stack([p["velocity"][1] for p in ps])
    np.testing.assert_array_equal(mc["velocity"][0], np.sort(SCORE.notes["id"]))
    order = np.argsort(SCORE.notes["id"])
    np.testing.assert_allclose(mc["velocity"][1], stack.mean(0)[order])
    assert WP.spread(ps, "velocity") == pytest.approx(np.mean(np.std(stack, 0, ddof=1)))
    assert WP.spread(ps[:1], "velocity") != WP.spread(ps[:1], "velocity")  # nan with one pianist
    # a key only one of three pianists has is left out of the mean; two of three is enough
    odd = [dict(p) for p in ps]
    beats, vel = ps[0]["velocity_beat"]
    odd[0]["velocity_beat"] = (np.append(beats, [100, 101]), np.append(vel, [1, 1]))
    odd[1]["velocity_beat"] = (np.append(ps[1]["velocity_beat"][0], [101]), np.append(ps[1]["velocity_beat"][1], [3]))
    keys, vals = WP.mean_curve(odd)["velocity_beat"]
    assert 100 not in keys and 101 in keys and vals[keys == 101][0] == pytest.approx(2.0)
    assert WP.spread(odd, "velocity_beat") == pytest.approx(WP.spread(ps, "velocity_beat"))


def test_work_figures_and_average_works():
    ps = three_pianists()
    mc = WP.mean_curve(ps)
    takes = [ps[0], performance(arc, velocity=np.full(N, 70), speed=1.3)]
    rend = {"model": takes, "model_point": [mc], "humanizer": [ps[1]], "deadpan": [takes[1]]}
    res = WP.work_figures(rend, ps)
    assert res["n_pianists"] == 3
    for key in ("model", "model_vs_mean", "model_point", "model_point_vs_mean", "pianist_pairs",
                "pianist_vs_others_mean"):
        assert set(res[key]) == set(WP.CURVES) | {"pedal_lifts"}, key
    assert res["model_point_vs_mean"]["velocity"]["r"] == pytest.approx(1.0)
    assert res["model_point_vs_mean"]["velocity"]["mae"] == pytest.approx(0.0)
    assert res["deadpan"]["velocity"]["r"] == 0.0  # a constant series counts as r = 0
    v = res["variety"]["velocity"]
    assert v["ratio"] == pytest.approx(v["model"] / v["pianists"])
    assert v["pianists"] == pytest.approx(WP.spread(ps, "velocity"))
    one = WP.work_figures(rend, ps[:1])
    assert one["pianist_pairs"] is None and "model_vs_mean" not in one and math.isnan(one["variety"]["tempo"]["ratio"])
    avg = WP.average_works({"a": res, "b": one, "c": {"error": "unreadable"}}, ["model", "model_point", "humanizer",
                                                                                "deadpan"])
    assert avg["works"] == 2 and avg["works_with_pairs"] == 1
    assert avg["performances"] == 4 and avg["performances_in_pair_works"] == 3
    assert avg["model_pair_works"]["velocity"]["r"] == pytest.approx(res["model"]["velocity"]["r"])
    assert avg["model"]["velocity"]["r"] == pytest.approx((res["model"]["velocity"]["r"]
                                                           + one["model"]["velocity"]["r"]) / 2)
    assert avg["variety"]["velocity"]["works"] == 1
    assert avg["variety"]["velocity"]["geo_mean_ratio"] == pytest.approx(v["ratio"])
    # the pedal split by whether the score marks it: the one pair work marks none
    assert avg["score_marks_pedal"]["works"] == 0 and avg["score_marks_pedal"]["model"] is None
    assert avg["score_marks_no_pedal"]["works"] == 1
    assert avg["score_marks_no_pedal"]["model"]["pedal_beat"]["r"] == avg["model_pair_works"]["pedal_beat"]["r"]
    marked = dict(res, score_marks_pedal=True)
    avg = WP.average_works({"a": res, "m": marked}, ["model", "model_point", "humanizer", "deadpan"])
    assert avg["score_marks_pedal"]["works"] == avg["score_marks_no_pedal"]["works"] == 1
    assert avg["score_marks_pedal"]["pianist_pairs"]["velocity"]["r"] == pytest.approx(
        res["pianist_pairs"]["velocity"]["r"])


def test_plot_work_writes_a_png(tmp_path):
    ps = three_pianists()
    path = tmp_path / "work.png"
    WP.plot_work(path, "synthetic", {"model": ps[:2], "model_point": [ps[2]]}, ps)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_pedal_on_the_beat_axis_and_lift_agreement():
    """A pianist who holds the pedal through each bar of 4 beats and changes at every bar line,
    against one who changes every 2 beats and one who never pedals."""
    from render.pedal import lift_agreement, pedal_on_beats
    from render.performance import PEDAL_DTYPE

    onset_beat = np.arange(32.0)
    onset_sec = onset_beat * 0.5                         # 120 bpm: a beat is 0.5 s
    def changes(every):
        rows = [(0.0, 64, 127)]
        for b in range(every, 32, every):
            rows += [(b * 0.5 + 0.02, 64, 0), (b * 0.5 + 0.1, 64, 127)]
        return np.array(rows, PEDAL_DTYPE)
    beats, down, lifts = pedal_on_beats(onset_beat, onset_sec, changes(4))
    assert list(beats) == list(range(31)) and np.all(down > 0.7) and down.mean() > 0.9
    np.testing.assert_allclose(lifts, np.arange(4, 32, 4) + 0.04, atol=1e-6)
    _, _, lifts2 = pedal_on_beats(onset_beat, onset_sec, changes(2))
    agree = lift_agreement(lifts, lifts2)
    assert agree["precision"] == 1.0 and agree["recall"] == pytest.approx(0.5, abs=0.04)
    none = pedal_on_beats(onset_beat, onset_sec, np.zeros(0, PEDAL_DTYPE))
    assert (none[1] == 0).all() and lift_agreement(none[2], lifts)["f1"] == 0.0
    c1 = WP.curves(np.arange(32), onset_beat, onset_sec, np.full(32, 0.4), np.full(32, 60), np.full(32, 120.0),
                   pedal=changes(4))
    c2 = WP.curves(np.arange(32), onset_beat, onset_sec, np.full(32, 0.4), np.full(32, 60), np.full(32, 120.0),
                   pedal=changes(2))
    res = WP.compare(c2, c1)
    assert res["pedal_lifts"]["recall"] == 1.0 and res["pedal_lifts"]["precision"] == pytest.approx(0.5, abs=0.04)
    assert res["pedal_beat"]["mae"] < 0.1


def test_tempo_dips_at_fermatas_and_the_end_measure_how_much_time_is_taken():
    """A pianist who holds the fermata (beats 10-11 at a third of the speed) and slows to half
    over the last beats against a rendering that plays straight through: the dips are measured
    in octaves below each curve's median, per kind, and averaged over works."""
    def held(b):
        b = np.asarray(b, float)
        return 120.0 * np.where((b >= 10) & (b < 12), 1 / 3, 1.0) * np.where(b >= 20, 0.5, 1.0)

    pianists = [performance(held), performance(lambda b: held(b) * 1.1)]
    straight = performance(lambda b: np.full(np.shape(b), 120.0))
    assert WP.tempo_dip(pianists[0]["tempo"], {10, 11}) < -1.0      # log2(1/3) = -1.58, smoothed by the GP
    assert WP.tempo_dip(straight["tempo"], {10, 11}) == pytest.approx(0.0, abs=1e-3)
    assert math.isnan(WP.tempo_dip(straight["tempo"], {500}))
    score = make_score(24)
    assert WP.event_beats(score)["fermata"] == set()                  # no markings: no fermata
    marks = empty_marks(N)
    marks["fermata"][np.floor(score.notes["onset_beat"]) == 10] = 1
    ev = WP.event_beats(Score(notes=score.notes, marks=marks, title="synthetic", format="test"))
    assert ev["fermata"] == {10, 11} and ev["end"] == set(range(int(BEATS.max()) - 3, int(BEATS.max()) + 1))
    res = WP.work_figures({"model": [straight], "model_point": [straight], "humanizer": [straight]}, pianists, ev)
    dips = res["tempo_dips"]
    assert dips["model"]["fermata"] == pytest.approx(0.0, abs=1e-3) and dips["pianists"]["fermata"] < -1.0
    assert dips["pianists"]["end"] < -0.5 and dips["model_point"]["end"] == pytest.approx(0.0, abs=1e-3)
    avg = WP.average_works({"a": res, "b": res}, ["model", "model_point", "humanizer"])
    assert avg["tempo_dips"]["pianists"]["fermata"] == pytest.approx(dips["pianists"]["fermata"])
    assert set(avg["tempo_dips"]) == {"model", "model_point", "humanizer", "pianists"}
