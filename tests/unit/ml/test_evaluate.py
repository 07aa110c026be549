"""ml.metrics, ml.table2, ml.wholepiece and ml.evaluate: the agreement measures, the batched Table 2
loops, the whole-piece renderings, the CLI."""
from __future__ import annotations

import csv
import json
import lzma
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ml import evaluate as E
from ml import metrics as M
from ml import table2 as T2
from ml import wholepiece as WP
from ml.data import head_scope_mask
from ml.defaults import POINT_TEMPERATURE
from ml.inference import Renderer
from ml.model import HEADS, CVRNN
from tests.unit.ml.conftest import make_score


# -- metrics -----------------------------------------------------------------------------------
def test_pearson_and_mae_match_scipy_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = 0.6 * a + rng.normal(size=200)
    assert M.pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-12)
    assert M.mae(a, b) == pytest.approx(np.mean(np.abs(a - b)))
    assert math.isnan(M.pearson(np.ones(5), np.arange(5)))  # constant: no correlation
    with pytest.raises(ValueError, match="lengths differ"):
        M.pearson(a, b[:-1])


def test_pooled_r_counts_levels_within_r_does_not():
    """Two performances at different levels: predicting the level alone gives a high pooled r
    and no within-performance r."""
    rng = np.random.default_rng(1)
    human = [50 + rng.normal(0, 3, (30, 10)), 90 + rng.normal(0, 3, (30, 10))]
    level = [np.full((30, 10), 52.0), np.full((30, 10), 88.0)]
    res = M.pooled_within(level, human)
    H = np.concatenate([h.ravel() for h in human])
    P = np.concatenate([p.ravel() for p in level])
    assert res["r_pooled"] == pytest.approx(stats.pearsonr(P, H)[0], abs=1e-12)
    assert res["r_pooled"] > 0.9
    assert math.isnan(res["r_within"])  # a level predicts nothing inside a performance
    assert res["mae"] == pytest.approx(np.mean(np.abs(P - H)))
    assert res["n"] == 600
    shape = [h + rng.normal(0, 1, h.shape) - h.mean() + 70 for h in human]
    res = M.pooled_within(shape, human)
    pc = np.concatenate([(s - s.mean()).ravel() for s in shape])
    hc = np.concatenate([(h - h.mean()).ravel() for h in human])
    assert res["r_within"] == pytest.approx(np.corrcoef(pc, hc)[0, 1], abs=1e-12)
    assert res["r_within"] > 0.8 and res["r_pooled"] < 0.3


def test_prime_mean_and_windows():
    rng = np.random.default_rng(2)
    v = rng.integers(0, 100, (80, 4)).astype(float)
    starts = np.array([20, 33, 40])
    pm = M.prime_mean(v, starts, 20, 10)
    assert pm.shape == (3, 10, 4)
    for i, s in enumerate(starts):
        np.testing.assert_allclose(pm[i], np.tile(v[s - 20:s].mean(0), (10, 1)))
    w = M.gather_windows(v, starts, 10)
    np.testing.assert_array_equal(w[1], v[33:43])
    with pytest.raises(ValueError, match="prime"):
        M.prime_mean(v, np.array([5]), 20, 10)


def test_start_points_seeded_in_range():
    s = M.start_points(200, 100, 20, 40, seed=(0, 3))
    assert len(s) == 100 and len(set(s.tolist())) == 100
    assert s.min() >= 20 and s.max() <= 160
    np.testing.assert_array_equal(s, M.start_points(200, 100, 20, 40, seed=(0, 3)))
    assert len(M.start_points(70, 100, 20, 40, seed=0)) == 11  # every possible start once
    assert len(M.start_points(50, 100, 20, 40, seed=0)) == 0


def test_spread_and_mean_of():
    v = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 7.0]])
    assert M.spread(v) == pytest.approx(np.mean(np.std(v, 0, ddof=1)))
    a = {p: {"r": float("nan"), "mae": 2.0} for p in M.PARAMS}
    b = {p: {"r": 0.5, "mae": 4.0} for p in M.PARAMS}
    m = M.mean_of([a, b])
    assert m["velocity"] == {"r": 0.25, "mae": 3.0}  # a constant rendering counts as r = 0


# -- the batched model loops agree with the Renderer's ----------------------------------------
@pytest.fixture(scope="module")
def tiny_renderer(tiny_config):
    torch.manual_seed(0)
    return Renderer(CVRNN(tiny_config).eval(), torch.device("cpu"))


def random_classes(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, k, (n,), generator=g) for k in HEADS.values()], -1)


def test_batched_prime_and_decode_match_renderer(tiny_renderer):
    r, m = tiny_renderer, tiny_renderer.model
    torch.manual_seed(1)
    c = torch.randn(30, m.cfg.c_dim)
    x = random_classes(30)
    assert x.shape == (30, len(HEADS))
    h_ref = r.prime(c[:20], x[:20])
    h = T2.prime_batch(m, c[None, :20].expand(3, -1, -1), x[None, :20].expand(3, -1, -1))
    torch.testing.assert_close(h, h_ref.expand(-1, 3, -1))
    for mode, z_mode in (("prior", "prior"), ("fixed", "zero")):
        ref, _, _ = r.decode_steps(c[20:], h_ref.expand(-1, 3, -1).contiguous(), torch.Generator().manual_seed(5),
                                   mode=mode, z_fixed=torch.zeros(3, m.cfg.z_dim))
        got = T2.decode_batch(m, c[None, 20:].expand(3, -1, -1), h, torch.Generator().manual_seed(5), z_mode=z_mode)
        torch.testing.assert_close(got, ref.transpose(0, 1))
    greedy = T2.decode_batch(m, c[None, 20:].expand(2, -1, -1), h[:, :2], torch.Generator(), z_mode="prior_mean",
                            greedy=True)
    assert torch.equal(greedy[0], greedy[1])
    # the point estimate (Table 2's "point" row): the renderer's point decoding, whatever the seed
    point = np.array([POINT_TEMPERATURE[k] for k in HEADS], np.float32)
    ref, _, _ = r.decode_steps(c[20:], h_ref.expand(-1, 2, -1).contiguous(), torch.Generator().manual_seed(5),
                               mode="prior", z_temperature=0.0, temperature=point)
    for seed in (5, 6):
        got = T2.decode_batch(m, c[None, 20:].expand(2, -1, -1), h[:, :2], torch.Generator().manual_seed(seed),
                              z_mode="prior_mean", temps=point)
        torch.testing.assert_close(got, ref.transpose(0, 1))


def test_batched_decode_with_scope_matches_renderer(tiny_renderer):
    """Heads outside their scope repeat the previous class (x_prev: the last priming note)."""
    r, m = tiny_renderer, tiny_renderer.model
    torch.manual_seed(2)
    c = torch.randn(12, m.cfg.c_dim)
    h = torch.randn(m.cfg.state_layers, 2, m.cfg.state_dim)
    onset = np.array([0, 0.5, 0.5, 0.75, 1, 1, 1.5, 2, 2, 2.25, 2.5, 3, 3.5, 4])
    scope = head_scope_mask(onset)[2:]  # the window starts inside a beat and a chord (as Table 2 may)
    x_prev = random_classes(2, seed=3)
    ref, _, _ = r.decode_steps(c, h.clone(), torch.Generator().manual_seed(5), mode="fixed",
                               z_fixed=torch.zeros(2, m.cfg.z_dim), temperature=1.0, scope=scope, x_prev=x_prev)
    got = T2.decode_batch(m, c[None].expand(2, -1, -1), h.clone(), torch.Generator().manual_seed(5), z_mode="zero",
                         scope=torch.from_numpy(scope)[None].expand(2, -1, -1), x_prev=x_prev)
    torch.testing.assert_close(got, ref.transpose(0, 1))
    tempo = list(HEADS).index("tempo")
    off = np.flatnonzero(~scope[:, tempo])
    assert off[0] == 0 and torch.equal(got[:, 0, tempo], x_prev[:, tempo])
    assert torch.equal(got[:, 0, -2:], x_prev[:, -2:])  # the pedal too: the same chord
    assert torch.equal(got[:, off[1:], tempo], got[:, off[1:] - 1, tempo])


def synthetic_human(score, speed: float, shift: float, seed: int) -> dict:
    """A pianist as ml.evaluate.load_arrays gives it (render.dataset layout) for a score at 100 bpm."""
    n = score.notes
    rng = np.random.default_rng(seed)
    grid = np.arange(0.0, n["onset_beat"].max() + 2, 0.25)
    tempo = speed * (100 + 15 * np.sin(grid[:-1] / 3 + shift))
    sec = np.concatenate([[0.0], np.cumsum(np.diff(grid) * 60.0 / tempo)])
    onset = np.interp(n["onset_beat"], grid, sec) + rng.normal(0, 0.005, len(n))
    vel = np.clip(60 + 20 * (n["staff"] == 1) + rng.integers(-8, 9, len(n)), 1, 127)
    perf = np.stack([onset, n["duration_beat"] * 0.5, vel], 1)
    return {"score_id": n["id"], "onset_beat": n["onset_beat"], "perf": perf,
            "marked_bpm": np.full(len(n), 100.0, np.float32)}


def test_whole_work_from_the_score_alone(tiny_renderer, tmp_path):
    score = make_score(20)
    humans = [synthetic_human(score, s, 0.2 * k, k) for k, s in enumerate((0.9, 1.0, 1.2))]
    png = tmp_path / "w.png"
    # the takes sampled at temperature 1 (a tiny random model's z barely moves expected classes)
    res = WP.whole_work(tiny_renderer, score, np.full(score.n_notes, 100.0), humans, seeds=2, seed=0, plot=png,
                       title="synthetic", temperature=np.ones(len(HEADS), np.float32))
    assert res["n_pianists"] == 3 and res["n_notes"] == score.n_notes
    assert res["speed_g"] == pytest.approx(1.0, rel=0.05)  # the median pianist's speed
    assert res["pianist_median_bpm"] == pytest.approx(100.0, rel=0.1)
    for kind in WP.KINDS:
        for key in (kind, kind + "_vs_mean"):
            assert math.isfinite(res[key]["velocity"]["mae"]) and math.isfinite(res[key]["tempo"]["mae"]), key
    assert res["pianist_pairs"]["tempo"]["r"] > 0.3  # the three share an arc
    assert res["variety"]["velocity"]["ratio"] > 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    mean = WP.average_works({"synthetic": res}, list(WP.KINDS))
    assert mean["works_with_pairs"] == 1 and mean["performances"] == 3


def test_a_work_in_two_score_versions_is_compared_per_version(tmp_path):
    """nASAP's Schubert D 894/ii: three pianists on the score with repeats, six on `_no_repeat`;
    their score positions do not line up, so each version is its own unit."""
    def perf(folder, name, corpus="nasap"):
        path = tmp_path / f"{folder}_{name}.npz"
        n = 3
        np.savez(path, target=np.zeros((n, 6), np.int16), onset_beat=np.arange(n, dtype=float),
                 marked_bpm=np.full(n, 60.0, np.float32), score_id=np.array(["n1", "n2", "n3"]),
                 perf=np.zeros((n, 3)), meta=json.dumps({"work": "w"}))
        row = {"work": "Schubert/D894-2", "corpus": corpus, "match_file": f"{corpus}/S/{folder}/{name}.match.xz",
               "score_file": f"{corpus}/S/{folder}/xml_score.musicxml.xz"}
        return row, path

    usable = [perf("894-2", "A"), perf("894-2_no_repeat", "B"), perf("894-2_no_repeat", "C"), perf("894-2", "D")]
    other = dict(perf("894-1", "E")[0], work="Schubert/D894-1"), perf("894-1", "E")[1]
    works = E.score_versions(usable + [other])
    assert sorted(works) == ["Schubert/D894-1", "Schubert/D894-2 [nasap 894-2]",
                             "Schubert/D894-2 [nasap 894-2_no_repeat]"]
    rows, arrays = works["Schubert/D894-2 [nasap 894-2_no_repeat]"]
    assert [r["match_file"].split("/")[-1] for r in rows] == ["B.match.xz", "C.match.xz"]
    assert len(arrays) == 2 and arrays[0]["score_id"].tolist() == ["n1", "n2", "n3"]
    assert len(works["Schubert/D894-2 [nasap 894-2]"][0]) == 2


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_bad_data_folder(tmp_path, tiny_checkpoint, capsys):
    assert E.main(["--data", str(tmp_path), "--json", str(tmp_path / "o.json"), "--checkpoint", tiny_checkpoint]) == 2
    assert "split.csv" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--head-temperatures", "0.5,x"], "comma-separated numbers"),
    (["--seeds", "0"], "--seeds"),
])
def test_cli_bad_arguments(tmp_path, tiny_checkpoint, capsys, args, message):
    assert E.main(["--data", str(tmp_path), "--json", str(tmp_path / "o.json"), "--checkpoint", tiny_checkpoint,
                   *args]) == 2
    assert message in capsys.readouterr().err


def finite(v) -> bool:
    return v is not None and math.isfinite(v)  # the JSON writes nan as null


@pytest.mark.data
@pytest.mark.timeout(600)
def test_end_to_end_tiny_folder(shared_data, tmp_path, tiny_checkpoint, capsys):
    """Two performances of a short prelude, as plain (uncompressed) files in a folder of our own."""
    with open(shared_data / "split.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["work"] == "Bach/Prelude_bwv_858"]
    assert len(rows) == 2
    data = tmp_path / "data"
    for r in rows:
        r["split"] = "val"
        for key in ("match_file", "score_file"):
            rel = r[key][:-3]
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            (data / rel).write_bytes(lzma.open(shared_data / r[key]).read())
            r[key] = rel
    with open(data / "split.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out, plots = tmp_path / "eval.json", tmp_path / "plots"
    assert E.main(["--data", str(data), "--json", str(out), "--checkpoint", tiny_checkpoint,
                   "--cache", str(tmp_path / "cache"), "--starts", "8", "--seeds", "2", "--plots", str(plots),
                   "--temperature", "0.6"]) == 0  # sampled notes: a random tiny model's expected classes barely vary
    printed = capsys.readouterr().out
    assert "paper z=0" in printed and "pianist pairs (ceiling)" in printed and "beat tempo" in printed
    assert "Tempo dip (octaves below the piece's median)" in printed
    res = json.loads(out.read_text())
    assert res["n_performances"] == 2
    assert set(M.PARAMS) == {"velocity", "duration_100", "deviation_100", "tempo_log_50"}
    for method in T2.METHODS_A:
        for p in M.PARAMS:
            for hz in ("10", "40"):
                cell = res["table2"][method][p][hz]
                assert cell["n"] == 2 * 8 * int(hz)
                assert math.isfinite(cell["mae"])
                if method not in ("model_prior_mean_greedy", "model_point"):  # a random tiny model's
                    # argmax or expected class can be constant
                    assert finite(cell["r_pooled"]) and finite(cell["r_within"]), (method, p, hz)
    wp = res["whole_piece"]
    work = wp["per_work"]["Bach/Prelude_bwv_858"]
    assert work["n_pianists"] == 2 and work["n_notes"] > 400 and 0.3 < work["speed_g"] < 3
    mean = wp["mean"]
    assert mean["works"] == mean["works_with_pairs"] == 1 and mean["performances_in_pair_works"] == 2
    # the two pianists slow over the prelude's last beats; every kind's dip there is a number
    dips = mean["tempo_dips"]
    assert {"model", "model_point", "humanizer", "deadpan", "pianists"} <= set(dips)
    assert all(finite(d["end"]) for d in dips.values()) and dips["pianists"]["end"] < 0
    for key in ("model_pair_works", "model_point_pair_works", "humanizer_pair_works", "deadpan_pair_works",
                "pianist_pairs", "model_vs_mean", "pianist_vs_others_mean"):
        for curve in WP.CURVES:
            assert finite(mean[key][curve]["mae"]) and finite(mean[key][curve]["r"]), (key, curve)
    assert mean["pianist_pairs"]["tempo"]["r"] > 0  # two pianists of one prelude agree somewhat
    for name in ("velocity", "tempo"):
        assert mean["variety"][name]["geo_mean_ratio"] > 0
    assert set(res["targets"]) == {"table2_beats_prime_mean", "table2_sampled_heads_beat_prime_mean",
                                   "sampled_3_4_of_pianist_pairs",
                                   "sampled_above_humanizer_r_and_mae", "point_90pct_of_pianist_pairs",
                                   "variety_ratio_0.5_to_2", "pedal_3_4_of_pianist_pairs",
                                   "pedal_above_humanizer"}
    assert 0 <= mean["pianist_pairs"]["pedal_lifts"]["f1"] <= 1
    assert 0 < mean["humanizer_pair_works"]["pedal_beat"]["mae"] < 1     # the rule pedals; a prelude barely
    assert "Sustain pedal" in printed and "no pedal (deadpan)" in printed
    assert [p.name for p in plots.iterdir()] == ["Bach_Prelude_bwv_858.png"]
    # prime-mean is computed from the human values: at 10 notes its MAE must be modest
    assert res["table2"]["prime_mean"]["velocity"]["10"]["mae"] < 30
