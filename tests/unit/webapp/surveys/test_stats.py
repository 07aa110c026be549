"""webapp.surveys.stats against scipy and hand-computed values on known data."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from webapp.surveys import stats

rng = np.random.default_rng(7)
# Likert-like ratings: many ties, as in a MOS test.
GROUPS = [rng.integers(1, 6, n) for n in (30, 25, 33, 12)]


def test_mean_ci_matches_scipy_t_interval():
    x = GROUPS[0]
    out = stats.mean_ci(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert out["n"] == 30 and out["mean"] == pytest.approx(x.mean())
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((lo, hi))


def test_mean_ci_known_values():
    out = stats.mean_ci([1, 2, 3, 4, 5])
    # sd = sqrt(2.5), t(0.975, 4) = 2.776445
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert out["mean"] == 3 and out["ci_low"] == pytest.approx(3 - half)


def test_mean_ci_degenerate():
    assert stats.mean_ci([])["n"] == 0 and math.isnan(stats.mean_ci([])["mean"])
    one = stats.mean_ci([4])
    assert one["mean"] == 4 and math.isnan(one["ci_low"])


def test_kruskal_matches_scipy_with_ties():
    out = stats.kruskal_wallis(GROUPS)
    ref = sps.kruskal(*GROUPS)
    assert out["H"] == pytest.approx(ref.statistic, rel=1e-12)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert out["df"] == 3


def test_kruskal_textbook_example():
    # Hollander & Wolfe style small example without ties: H by hand.
    a, b, c = [1, 2, 3], [4, 5, 6], [7, 8, 9]
    # ranks sums 6, 15, 24; H = 12/(9*10) * (36+225+576)/3 - 30 = 7.2
    assert stats.kruskal_wallis([a, b, c])["H"] == pytest.approx(7.2)


def test_kruskal_degenerate_is_nan_not_error():
    assert math.isnan(stats.kruskal_wallis([[3, 3], [3, 3, 3]])["H"])
    assert math.isnan(stats.kruskal_wallis([[1, 2], []])["p"])


def test_mann_whitney_matches_scipy():
    x, y = GROUPS[0], GROUPS[2]
    out = stats.mann_whitney(x, y)
    ref = sps.mannwhitneyu(x, y, alternative="two-sided")
    assert out["U"] == ref.statistic and out["p"] == pytest.approx(ref.pvalue)
    assert out["r"] == pytest.approx(2 * ref.statistic / (len(x) * len(y)) - 1)
    assert math.isnan(stats.mann_whitney([2, 2], [2])["p"])


def test_holm_and_bonferroni_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert stats.p_adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.p_adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    out = stats.p_adjust([0.5, math.nan, 0.6], "holm")
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1]) and out[2] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.p_adjust(p, "fdr")


def test_pairwise_every_pair_corrected():
    groups = dict(zip("abcd", GROUPS))
    rows = stats.pairwise(groups)
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"),
                                                 ("b", "d"), ("c", "d")]
    raw = [sps.mannwhitneyu(groups[r["a"]], groups[r["b"]]).pvalue for r in rows]
    assert [r["p_adj"] for r in rows] == pytest.approx(list(stats.p_adjust(raw, "holm")))
    assert all(r["p_adj"] >= r["p"] for r in rows)


def test_wilcoxon_zero_matches_scipy_with_zeros_and_ties():
    x = np.array([2, 1, 0, 1, 2, -1, 0, 1, 1, 2, -2, 1, 0, 1, 1, 2, 0, -1, 1, 1])
    out = stats.wilcoxon_zero(x)
    ref = sps.wilcoxon(x, zero_method="wilcox")
    assert out["W"] == ref.statistic and out["p"] == pytest.approx(ref.pvalue)
    assert out["n"] == 20 and out["n_nonzero"] == 16
    assert out["p"] < 0.05  # 12 right vs 4 wrong guesses


def test_wilcoxon_all_zero_is_nan():
    assert math.isnan(stats.wilcoxon_zero([0, 0, 0])["p"])


def test_ab_table_counts():
    t = stats.ab_table([2, -1, 0, 1])
    assert (t["n_right"], t["n_wrong"], t["n_zero"]) == (2, 1, 1) and t["mean"] == 0.5


def test_mos_table_shape():
    t = stats.mos_table({"deadpan": GROUPS[0], "model": GROUPS[1], "human": []})
    assert set(t["conditions"]) == {"deadpan", "model", "human"}
    assert t["conditions"]["human"]["n"] == 0 and t["kruskal"]["df"] == 1
    assert len(t["pairwise"]) == 3
