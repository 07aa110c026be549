"""ml.metrics and ml.evaluate: the agreement measures, the batched Table 2 loops, the CLI."""
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
from ml.inference import Renderer
from ml.model import CVRNN, targets_to_classes


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


def test_batched_prime_and_decode_match_renderer(tiny_renderer):
    r, m = tiny_renderer, tiny_renderer.model
    torch.manual_seed(1)
    c = torch.randn(30, m.cfg.c_dim)
    x = targets_to_classes(torch.stack([torch.randint(1, 128, (30,)), torch.randint(1, 800, (30,)),
                                        torch.randint(-50, 50, (30,)), torch.randint(-50, 50, (30,))], -1))
    h_ref = r.prime(c[:20], x[:20])
    h = E.prime_batch(m, c[None, :20].expand(3, -1, -1), x[None, :20].expand(3, -1, -1))
    torch.testing.assert_close(h, h_ref.expand(-1, 3, -1))
    for mode, z_mode in (("prior", "prior"), ("fixed", "zero")):
        ref, _, _ = r.decode_steps(c[20:], h_ref.expand(-1, 3, -1).contiguous(), torch.Generator().manual_seed(5),
                                   mode=mode, z_fixed=torch.zeros(3, m.cfg.z_dim))
        got = E.decode_batch(m, c[None, 20:].expand(3, -1, -1), h, torch.Generator().manual_seed(5), z_mode=z_mode)
        torch.testing.assert_close(got, ref.transpose(0, 1))
    greedy = E.decode_batch(m, c[None, 20:].expand(2, -1, -1), h[:, :2], torch.Generator(), z_mode="prior_mean",
                            greedy=True)
    assert torch.equal(greedy[0], greedy[1])


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_bad_data_folder(tmp_path, tiny_checkpoint, capsys):
    assert E.main(["--data", str(tmp_path), "--json", str(tmp_path / "o.json"), "--checkpoint", tiny_checkpoint]) == 2
    assert "split.csv" in capsys.readouterr().err


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
    out = tmp_path / "eval.json"
    assert E.main(["--data", str(data), "--json", str(out), "--checkpoint", tiny_checkpoint,
                   "--cache", str(tmp_path / "cache"), "--starts", "8", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "paper z=0" in printed and "human_pairs" in printed
    res = json.loads(out.read_text())
    assert res["n_performances"] == 2
    for method in E.METHODS_A:
        for p in M.PARAMS:
            for hz in ("10", "40"):
                cell = res["table2"][method][p][hz]
                assert cell["n"] == 2 * 8 * int(hz)
                assert math.isfinite(cell["mae"])
                if method != "model_prior_mean_greedy":  # a random tiny model's argmax can be constant
                    assert math.isfinite(cell["r_pooled"]) and math.isfinite(cell["r_within"])
    wp = res["whole_piece"]
    assert wp["works_with_pairs"] == ["Bach/Prelude_bwv_858"]
    for key in ("model", "model_z0", "humanizer", "deadpan", "human_pairs"):
        for p in M.PARAMS:
            assert math.isfinite(wp["mean"][key][p]["mae"]) and math.isfinite(wp["mean"][key][p]["r"])
    for p in ("velocity", "tempo_dev_bpm"):
        assert wp["variety"][p]["geo_mean_ratio"] > 0
    assert set(res["targets"]) == {"table2_beats_prime_mean", "whole_piece_3_4_of_ceiling",
                                   "whole_piece_above_humanizer", "variety_ratio_0.5_to_2"}
    # prime-mean is computed from the human values: at 10 notes its MAE must be modest
    assert res["table2"]["prime_mean"]["velocity"]["10"]["mae"] < 30
