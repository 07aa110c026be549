"""Statistics of the listening tests (numpy + scipy, no Django).

MOS (paper 4.1, Table 1): per condition the mean with a 95 % t confidence interval, a
Kruskal-Wallis H test over the conditions, and pairwise two-sided Mann-Whitney U tests with a
Holm (default) or Bonferroni correction. A/B (paper 4.2): the mean signed confidence with its
confidence interval and a two-sided Wilcoxon signed-rank test against a median of zero.
Every function returns NaN (never raises) where a statistic is undefined: too few values, or
all values equal.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy import stats as sps


def _arr(x) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def mean_ci(values, level: float = 0.95) -> dict:
    """Mean and two-sided t confidence interval.

    Returns
    -------
    dict
        n, mean, sd (ddof 1), ci_low, ci_high; NaN where undefined (n < 2 for the interval).
    """
    x = _arr(values)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def kruskal_wallis(groups) -> dict:
    """Kruskal-Wallis H test with the tie correction (as scipy.stats.kruskal).

    Parameters
    ----------
    groups : sequence of array-like
        Two or more samples; empty ones are left out.

    Returns
    -------
    dict
        H, df, p; NaN when fewer than two non-empty groups or all values are equal.
    """
    gs = [_arr(g) for g in groups]
    gs = [g for g in gs if len(g)]
    k = len(gs)
    if k < 2:
        return {"H": math.nan, "df": max(k - 1, 0), "p": math.nan}
    allv = np.concatenate(gs)
    n = len(allv)
    ranks = sps.rankdata(allv)
    _, counts = np.unique(allv, return_counts=True)
    ties = 1.0 - float(np.sum(counts ** 3 - counts)) / (n ** 3 - n) if n > 1 else 0.0
    if ties <= 0:
        return {"H": math.nan, "df": k - 1, "p": math.nan}
    bounds = np.cumsum([0] + [len(g) for g in gs])
    ssum = sum(ranks[a:b].sum() ** 2 / (b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    h = (12.0 / (n * (n + 1)) * ssum - 3 * (n + 1)) / ties
    return {"H": float(h), "df": k - 1, "p": float(sps.chi2.sf(h, k - 1))}


def mann_whitney(x, y) -> dict:
    """Two-sided Mann-Whitney U test (scipy's default method) and the rank-biserial r.

    Returns
    -------
    dict
        U (of x), p, r (positive when x tends to be larger); NaN when a sample is empty or all
        values are equal.
    """
    x, y = _arr(x), _arr(y)
    if len(x) == 0 or len(y) == 0 or np.ptp(np.concatenate([x, y])) == 0:
        return {"U": math.nan, "p": math.nan, "r": math.nan}
    res = sps.mannwhitneyu(x, y, alternative="two-sided")
    u = float(res.statistic)
    return {"U": u, "p": float(res.pvalue), "r": 2 * u / (len(x) * len(y)) - 1}


def p_adjust(pvalues, method: str = "holm") -> np.ndarray:
    """Family-wise corrected p values: ``holm`` (step-down) or ``bonferroni``; NaNs stay NaN
    and are not counted in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    if method == "bonferroni":
        out[ok] = np.minimum(p[ok] * m, 1.0)
    elif method == "holm":
        order = ok[np.argsort(p[ok], kind="stable")]
        adj = np.maximum.accumulate(p[order] * (m - np.arange(m)))
        out[order] = np.minimum(adj, 1.0)
    else:
        raise ValueError(f"unknown correction {method!r}; use holm or bonferroni")
    return out


def pairwise(groups: dict, method: str = "holm") -> list[dict]:
    """Mann-Whitney U for every pair of groups, p corrected over the pairs.

    Returns
    -------
    list of dict
        a, b, U, r, p, p_adj in the order of ``groups``' keys.
    """
    rows = []
    for a, b in combinations(list(groups), 2):
        rows.append({"a": a, "b": b, **mann_whitney(groups[a], groups[b])})
    adj = p_adjust([r["p"] for r in rows], method)
    for r, pa in zip(rows, adj):
        r["p_adj"] = float(pa)
    return rows


def wilcoxon_zero(values) -> dict:
    """Two-sided Wilcoxon signed-rank test of a median of zero (zeros dropped, as Wilcoxon's
    original; normal approximation with the tie correction when there are ties or zeros).

    Returns
    -------
    dict
        n (all values), n_nonzero, W (the smaller rank sum), p; NaN with fewer than one nonzero.
    """
    x = _arr(values)
    nz = int(np.count_nonzero(x))
    if nz == 0:
        return {"n": len(x), "n_nonzero": 0, "W": math.nan, "p": math.nan}
    res = sps.wilcoxon(x, zero_method="wilcox", alternative="two-sided")
    return {"n": len(x), "n_nonzero": nz, "W": float(res.statistic), "p": float(res.pvalue)}


def shapiro(values) -> float:
    """Shapiro-Wilk p value (the paper's normality check); NaN below 3 values or for constants."""
    x = _arr(values)
    if len(x) < 3 or np.ptp(x) == 0:
        return math.nan
    return float(sps.shapiro(x).pvalue)


def mos_table(values: dict, method: str = "holm") -> dict:
    """One question's Table-1 block: per condition mean/CI, Kruskal-Wallis, pairwise tests.

    Parameters
    ----------
    values : dict
        condition -> ratings (every condition listed, even with no ratings yet).
    """
    return {"conditions": {c: {**mean_ci(v), "shapiro_p": shapiro(v)} for c, v in values.items()},
            "kruskal": kruskal_wallis(list(values.values())),
            "pairwise": pairwise(values, method), "correction": method}


def ab_table(scores) -> dict:
    """The A/B summary: signed mean confidence with its CI, Wilcoxon vs zero, right/wrong/0."""
    x = _arr(scores)
    return {**mean_ci(x), "wilcoxon": wilcoxon_zero(x), "shapiro_p": shapiro(x),
            "n_right": int(np.sum(x > 0)), "n_wrong": int(np.sum(x < 0)),
            "n_zero": int(np.sum(x == 0))}
