"""Agreement measures between predicted and human performance parameters (numpy only).

Parameters are the paper's four (render.dataset.TARGET_NAMES order): velocity (MIDI steps),
duration_100 (1/100 beat), deviation_100 (1/100 beat), tempo_log_50 (the beat tempo, 1/50 octave
around the reference; the paper's was bpm around the written tempo).

- pooled r: Pearson r over every prediction of a split concatenated (the paper's Table 2);
- within r: the same after centring the predicted and the human series on their own mean per
  performance, so that the level of each piece no longer counts;
- MAE: mean absolute difference, in the parameter's units.

A constant series has no correlation; `pearson` returns nan for it and callers that average
over renderings count it as r = 0 (a deadpan tempo curve predicts nothing about the shape).

Also the report of ml.evaluate: the issue's quality targets and the printed tables.
"""
from __future__ import annotations

import math

import numpy as np

METHODS_A = ("model_z0", "model_prior", "model_prior_mean", "model_prior_mean_greedy", "model_point", "prime_mean")
PARAMS = ("velocity", "duration_100", "deviation_100", "tempo_log_50")
PAPER_TABLE2 = {  # Maezawa et al. 2019, Table 2: Pearson r, (z = 0, z ~ primed prior)
    "velocity": {10: (0.61, 0.72), 40: (0.37, 0.68)},
    "deviation_100": {10: (0.02, 0.07), 40: (0.19, 0.24)},
    "duration_100": {10: (0.77, 0.77), 40: (0.82, 0.82)},
    "tempo_log_50": {10: (0.07, 0.21), 40: (0.00, 0.14)},
}


def pearson(a, b) -> float:
    """Pearson r of two 1-D series; nan when either is constant or shorter than 2."""
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    if len(a) != len(b):
        raise ValueError(f"series lengths differ: {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else float("nan")


def mae(a, b) -> float:
    """Mean absolute difference of two equally long series."""
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    if len(a) != len(b):
        raise ValueError(f"series lengths differ: {len(a)} and {len(b)}")
    return float(np.mean(np.abs(a - b))) if len(a) else float("nan")


def pooled_within(pred: list, human: list) -> dict:
    """Pooled r, within-performance r and MAE of per-performance series.

    Parameters
    ----------
    pred, human : lists (one entry per performance) of arrays of the same shape each, any
        shape (e.g. (starts, notes)); flattened.

    Returns
    -------
    dict with ``r_pooled``, ``r_within``, ``mae``, ``n``.
    """
    if len(pred) != len(human):
        raise ValueError("one predicted and one human array per performance")
    p = [np.asarray(x, float).ravel() for x in pred]
    h = [np.asarray(x, float).ravel() for x in human]
    if not p or sum(len(x) for x in p) == 0:
        return {"r_pooled": float("nan"), "r_within": float("nan"), "mae": float("nan"), "n": 0}
    pc = np.concatenate([x - x.mean() for x in p if len(x)])
    hc = np.concatenate([x - x.mean() for x in h if len(x)])
    P, H = np.concatenate(p), np.concatenate(h)
    return {"r_pooled": pearson(P, H), "r_within": pearson(pc, hc), "mae": mae(P, H), "n": int(len(P))}


def prime_mean(values: np.ndarray, starts: np.ndarray, prime: int, horizon: int) -> np.ndarray:
    """The "prime-mean" prediction: the mean of the ``prime`` notes before each start point.

    values (M, K) one performance's parameters; starts (S,) note indices >= prime.
    Returns (S, horizon, K): each start's priming mean repeated over the next ``horizon`` notes.
    """
    values = np.asarray(values, float)
    starts = np.asarray(starts)
    if np.any(starts < prime):
        raise ValueError("every start point needs `prime` notes before it")
    csum = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, 0)])
    mean = (csum[starts] - csum[starts - prime]) / prime          # (S, K)
    return np.repeat(mean[:, None, :], horizon, axis=1)


def gather_windows(values: np.ndarray, starts: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """values (M, ...) -> (S, length, ...): rows starts + offset .. + length - 1 of each start."""
    idx = np.asarray(starts)[:, None] + offset + np.arange(length)[None, :]
    return np.asarray(values)[idx]


def start_points(n_notes: int, count: int, prime: int, horizon: int, seed) -> np.ndarray:
    """``count`` distinct seeded start points s with prime <= s <= n_notes - horizon (sorted);
    fewer when the performance is short, none when it is shorter than prime + horizon."""
    lo, hi = prime, n_notes - horizon
    if hi < lo:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    k = min(count, hi - lo + 1)
    return np.sort(rng.choice(np.arange(lo, hi + 1), size=k, replace=False))


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    """r and MAE of each parameter between two (N, 4) arrays of the same notes."""
    out = {}
    for k, name in enumerate(PARAMS):
        out[name] = {"r": pearson(a[:, k], b[:, k]), "mae": mae(a[:, k], b[:, k])}
    return out


def mean_of(results: list[dict], nan_as_zero: bool = True) -> dict:
    """Average `compare` results (r with nan counted as 0 when ``nan_as_zero``)."""
    out = {}
    for name in PARAMS:
        r = np.array([x[name]["r"] for x in results], float)
        if nan_as_zero:
            r = np.nan_to_num(r, nan=0.0)
        m = np.array([x[name]["mae"] for x in results], float)
        out[name] = {"r": float(np.nanmean(r)) if len(r) else float("nan"),
                     "mae": float(np.nanmean(m)) if len(m) else float("nan")}
    return out


def spread(values: np.ndarray) -> float:
    """Mean over notes (columns) of the std (ddof 1) across renderings (rows); values (R, N)."""
    v = np.asarray(values, float)
    if v.shape[0] < 2 or v.shape[1] == 0:
        return float("nan")
    return float(np.mean(np.std(v, axis=0, ddof=1)))


def no_nan(x):
    """nan (an undefined r) becomes null: strict JSON."""
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [no_nan(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def average(results: list[dict]) -> dict:
    """Mean r and MAE per parameter over works (each a `mean_of` result)."""
    return {p: {m: float(np.mean([r[p][m] for r in results])) if results else float("nan")
                for m in ("r", "mae")} for p in PARAMS}


# -- the report of ml.evaluate -------------------------------------------------------------
def targets(a: dict, b: dict) -> dict:
    """The model v2 issue's quality targets, each judged on the printed figures."""
    out = {}
    if a:
        base = a["prime_mean"]

        def beats(model):
            return all(model[p][hz]["r_within"] > base[p][hz]["r_within"] and model[p][hz]["mae"] < base[p][hz]["mae"]
                       for p in PARAMS for hz in model[p])
        # the primed point estimate (z at the primed prior's mean, the ordinal heads' expected
        # class: the renderer's decoding at randomness 0); also reported: with the heads sampled
        out["table2_beats_prime_mean"] = beats(a["model_point"]) if "model_point" in a else beats(a["model_prior"])
        out["table2_sampled_heads_beat_prime_mean"] = beats(a["model_prior"])
    if b:
        mean = b["mean"]
        m, pt, hz = mean["model_pair_works"], mean["model_point_pair_works"], mean["humanizer_pair_works"]
        hp = b["mean"]["pianist_pairs"]
        key = ("velocity", "tempo")
        out["sampled_3_4_of_pianist_pairs"] = all(m[p]["r"] >= 0.75 * hp[p]["r"] for p in key)
        four = ("velocity", "tempo", "duration_100", "deviation_100")
        out["sampled_above_humanizer_r_and_mae"] = all(m[p]["r"] > hz[p]["r"] and m[p]["mae"] < hz[p]["mae"]
                                                       for p in four)
        out["point_90pct_of_pianist_pairs"] = all(pt[p]["r"] >= 0.9 * hp[p]["r"] for p in key)
        out["variety_ratio_0.5_to_2"] = all(0.5 <= v["geo_mean_ratio"] <= 2.0 for v in b["mean"]["variety"].values())
        if "pedal_beat" in m and "pedal_lifts" in m:   # the pedal issue's targets
            out["pedal_3_4_of_pianist_pairs"] = (m["pedal_beat"]["r"] >= 0.75 * hp["pedal_beat"]["r"]
                                                 and m["pedal_lifts"]["f1"] >= 0.75 * hp["pedal_lifts"]["f1"])
            out["pedal_above_humanizer"] = (m["pedal_beat"]["r"] > hz["pedal_beat"]["r"]
                                            and m["pedal_lifts"]["f1"] > hz["pedal_lifts"]["f1"])
    return out


def format_report(res: dict) -> str:
    a, lines = res["table2"] or {}, []
    short = {"velocity": "velocity", "deviation_100": "onset dev", "duration_100": "duration", "tempo_log_50": "tempo"}
    if a:
        lines.append(f"Table 2 protocol ({res['n_performances']} performances, {res['n_starts']} start points)")
        lines.append(f"{'':16}{'paper z=0':>10}{'paper prior':>12}{'z=0':>8}{'prior':>8}{'prior mu':>9}"
                     f"{'greedy':>8}{'point':>8}{'prime-mean':>11}")
        for stat, label in (("r_pooled", "pooled r"), ("r_within", "within r"), ("mae", "MAE")):
            lines.append(f"-- {label}")
            for p in ("velocity", "deviation_100", "duration_100", "tempo_log_50"):
                for hz in ("10", "40"):
                    paper = [f"{v:.2f}" for v in PAPER_TABLE2[p][int(hz)]] if stat == "r_pooled" else ("", "")
                    vals = [a[m][p][hz][stat] for m in METHODS_A]
                    lines.append(f"{short[p] + ' ' + hz:16}{paper[0]:>10}{paper[1]:>12}"
                                 + "".join(f"{v:>{w}.2f}" for v, w in zip(vals, (8, 8, 9, 8, 8, 11))))
    b = res.get("whole_piece")
    if b:
        mb = b["mean"]
        curves = ("velocity", "velocity_beat", "tempo", "duration_100", "deviation_100")
        names = {"velocity": "velocity", "velocity_beat": "vel (beat)", "tempo": "beat tempo",
                 "duration_100": "duration", "deviation_100": "onset dev"}
        lines.append("")
        lines.append(f"Whole pieces from the score alone vs every pianist: {mb['works_with_pairs']} works with 2+ "
                     f"pianists ({mb['performances_in_pair_works']} performances); r / MAE (tempo MAE in bpm)")
        lines.append(f"{'':26}" + "".join(f"{names[c]:>16}" for c in curves))
        rows = [("model sampled", "model_pair_works"), ("model point estimate", "model_point_pair_works"),
                ("model takes' mean", "model_take_mean_pair_works"), ("humanizer", "humanizer_pair_works"),
                ("deadpan", "deadpan_pair_works"),
                ("pianist pairs (ceiling)", "pianist_pairs"), ("model sampled vs mean", "model_vs_mean"),
                ("model point vs mean", "model_point_vs_mean"), ("humanizer vs mean", "humanizer_vs_mean"),
                ("pianist vs others' mean", "pianist_vs_others_mean")]
        for label, key in rows:
            row = mb[key]
            lines.append(f"{label:26}" + "".join(f"{row[c]['r']:>8.2f}{row[c]['mae']:>8.1f}" for c in curves))
        lines.append(f"All {mb['works']} works ({mb['performances']} performances), model sampled: "
                     + ", ".join(f"{names[c]} r {mb['model'][c]['r']:.2f}" for c in curves))
        lines.append("Variety (model takes / pianists, spread ratio, geometric mean over works): "
                     + ", ".join(f"{k} {v['geo_mean_ratio']:.2f}" for k, v in mb["variety"].items()))
        dips = mb.get("tempo_dips")
        if dips:
            lines.append("Tempo dip (octaves below the piece's median) at marked fermatas / over the last 4 beats: "
                         + "; ".join(f"{k.replace('_', ' ')} {v['fermata']:.2f} / {v['end']:.2f}"
                                     for k, v in dips.items() if k != "model_take_mean"))
        lines.append("")
        lines.append("Sustain pedal (same works): fraction of each beat down, r / MAE; lifts within 1/4 beat, "
                     "precision / recall / F1")
        for label, key in rows[:6]:
            row = mb[key]
            if "pedal_beat" not in row:
                continue
            pl = row.get("pedal_lifts", {})
            label = "no pedal (deadpan)" if key == "deadpan_pair_works" else label
            lines.append(f"{label:26}{row['pedal_beat']['r']:>8.2f}{row['pedal_beat']['mae']:>8.2f}"
                         + "".join(f"{pl.get(m, float('nan')):>8.2f}" for m in ("precision", "recall", "f1")))
        for name, says in (("score_marks_pedal", "marks the pedal"), ("score_marks_no_pedal", "marks none")):
            part = mb.get(name)
            if part and part["works"]:
                lines.append(f"  {part['works']} works whose score {says}, beat r / MAE, lift F1: " + "; ".join(
                    f"{k.replace('_', ' ')} {part[k]['pedal_beat']['r']:.2f} / {part[k]['pedal_beat']['mae']:.2f}"
                    f", {part[k]['pedal_lifts'].get('f1', float('nan')):.2f}"
                    for k in ("model", "model_point", "humanizer", "pianist_pairs") if "pedal_beat" in part[k]))
    lines.append("")
    lines.append("Targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in res["targets"].items()))
    return "\n".join(lines)
