"""Whole pieces rendered from the score alone against every pianist (DESIGN section 5, v2 protocol).

For each work: the score (as its longest performance played it, repeats included; markings and
marked tempo W from the MusicXML) is rendered with one scalar tempo, the median over the
work's pianists of their overall speed (g * W at the first marking), and nothing else from any
human. Renderings: the model sampled (``seeds`` takes at the default settings), the model's
point estimate (z at the prior mean, each head's most likely class), the rule-based humanizer
(``seeds`` seeds) and deadpan. Each rendering and each pianist become curves:

- ``tempo``: the beat-level log2 tempo curve (arcs included): the GP fit of performed time on
  score position (render.encoding.gp_tempo_curve) read at every beat (quarter), 60 / its step;
- ``velocity`` per note and ``velocity_beat``, its mean per beat;
- ``duration_100`` and ``deviation_100`` per note, encoded against the rendering's own speed;
- ``pedal_beat``: the fraction of each score beat with the sustain down, and ``pedal_lifts``,
  the score positions of its lifts, compared as precision / recall / F1 within a quarter beat
  (render.pedal.pedal_on_beats, lift_agreement); a rendering without pedal has it up throughout.

Each rendering is compared with each pianist on what both have (Pearson r, MAE; tempo MAE in bpm
after scaling the rendering to that pianist's median tempo: the comparison with one pianist
uses that pianist's tempo) and with the pianists' mean curve; every pair of pianists gives the
ceiling. Variety: the spread across the model's takes over the spread across the pianists.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from ml.metrics import mae, pearson
from render.encoding import GP_FWHM_BEAT, encode, gp_tempo_curve, onset_groups, tempo_ratio
from render.pedal import lift_agreement, pedal_on_beats

CURVES = ("velocity", "velocity_beat", "tempo", "duration_100", "deviation_100", "pedal_beat")
LIFT_METRICS = ("precision", "recall", "f1")


def curves(keys: np.ndarray, onset_beat: np.ndarray, onset_sec: np.ndarray, duration_sec: np.ndarray,
           velocity: np.ndarray, marked_bpm: np.ndarray, is_grace: np.ndarray | None = None,
           pedal: np.ndarray | None = None) -> dict:
    """One performance (or rendering) as curves keyed by note id or beat.

    Parameters
    ----------
    keys : (M,) note ids; onset_beat (M,) score positions (sorted); onset_sec, duration_sec,
    velocity : (M,) the performance; marked_bpm : (M,) W; is_grace : (M,) bool or None;
    pedal : PEDAL_DTYPE events (an empty array: no pedal; None: the pedal is not compared).

    Returns
    -------
    {curve: (keys (K,), values (K,))} for each of ``CURVES``, and ``median_bpm``.
    """
    onset_beat = np.asarray(onset_beat, float)
    grace = np.zeros(len(onset_beat), bool) if is_grace is None else np.asarray(is_grace, bool)
    grp, first = onset_groups(onset_beat)
    w = (~grace).astype(float) + 1e-6
    t_group = np.bincount(grp, onset_sec * w, len(first)) / np.bincount(grp, w, len(first))
    u = onset_beat[first]
    out = {}
    if len(u) >= 3:
        mean, _ = gp_tempo_curve(u, t_group)
        beats = np.arange(np.ceil(u[0] - 1e-6), np.floor(u[-1] + 1e-6))
        t = np.interp(np.concatenate([beats, beats[-1:] + 1]) if len(beats) else beats, u, mean)
        step = np.diff(t)
        ok = step > 1e-3
        out["tempo"] = (beats[ok].astype(np.int64), np.log2(60.0 / step[ok]))
    else:
        out["tempo"] = (np.zeros(0, np.int64), np.zeros(0))
    vel = np.asarray(velocity, float)
    out["velocity"] = (np.asarray(keys), vel)
    b = np.floor(onset_beat + 1e-6).astype(np.int64)
    ub, inv = np.unique(b, return_inverse=True)
    out["velocity_beat"] = (ub, np.bincount(inv, vel) / np.bincount(inv))
    g = tempo_ratio(onset_beat, onset_sec, marked_bpm, grace)
    # the protocol's deviation is against the 2-beat curve, whatever the model's target uses
    enc, _, _ = encode(onset_beat, g * np.asarray(marked_bpm, float), np.asarray(onset_sec, float),
                       np.asarray(duration_sec, float), vel, grace, tempo_fwhm_beat=GP_FWHM_BEAT)
    out["duration_100"] = (np.asarray(keys), enc["duration_100"].astype(float))
    out["deviation_100"] = (np.asarray(keys), enc["deviation_100"].astype(float))
    out["median_bpm"] = float(2.0 ** np.median(out["tempo"][1])) if len(out["tempo"][1]) else float("nan")
    out["pedal_beat"], out["pedal_lifts"] = (np.zeros(0, np.int64), np.zeros(0)), None
    if pedal is not None:
        beats, down, lifts = pedal_on_beats(onset_beat, onset_sec, pedal)
        out["pedal_beat"], out["pedal_lifts"] = (beats, down), lifts
    return out


def _common(a, b):
    _, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    return a[1][ia], b[1][ib]


def compare(a: dict, b: dict) -> dict:
    """r and MAE of every curve of rendering ``a`` against pianist ``b`` (their common keys)."""
    out = {}
    for name in CURVES:
        x, y = _common(a[name], b[name])
        if name == "tempo":  # log2 tempo: r on the curve, MAE in bpm at the pianist's speed
            r = pearson(x, y) if len(x) >= 2 else float("nan")
            xb, yb = 2.0 ** x, 2.0 ** y
            if len(x):
                xb = xb * np.median(yb) / np.median(xb)
            out[name] = {"r": r, "mae": mae(xb, yb) if len(x) else float("nan")}
        else:
            out[name] = {"r": pearson(x, y) if len(x) >= 2 else float("nan"),
                         "mae": mae(x, y) if len(x) else float("nan")}
    la, lb = a.get("pedal_lifts"), b.get("pedal_lifts")
    out["pedal_lifts"] = (lift_agreement(la, lb) if la is not None and lb is not None
                          else dict.fromkeys(LIFT_METRICS, float("nan")))
    return out


def mean_results(results: list[dict]) -> dict:
    """Mean r (nan, a constant series, counted as 0) and MAE per curve over comparisons."""
    out = {}
    for name in CURVES:
        r = np.nan_to_num(np.array([x[name]["r"] for x in results], float), nan=0.0)
        m = np.array([x[name]["mae"] for x in results], float)
        out[name] = {"r": float(r.mean()) if len(r) else float("nan"),
                     "mae": float(np.nanmean(m)) if np.isfinite(m).any() else float("nan")}
    out["pedal_lifts"] = {k: _nanmean([x["pedal_lifts"][k] for x in results if "pedal_lifts" in x])
                          for k in LIFT_METRICS}
    return out


def _nanmean(values) -> float:
    v = np.array(values, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def mean_curve(perfs: list[dict]) -> dict:
    """The pianists' mean curve: per key, the mean over the pianists that have it (at least half)."""
    out = {}
    for name in CURVES:
        keys = np.concatenate([p[name][0] for p in perfs])
        vals = np.concatenate([p[name][1] for p in perfs])
        uk, inv = np.unique(keys, return_inverse=True)
        cnt = np.bincount(inv)
        mean = np.bincount(inv, vals) / cnt
        keep = cnt >= max(1, len(perfs) / 2)
        out[name] = (uk[keep], mean[keep])
    return out


def spread(perfs: list[dict], name: str) -> float:
    """Mean over the keys all of ``perfs`` have of the std (ddof 1) across them; nan below 2."""
    if len(perfs) < 2:
        return float("nan")
    common = perfs[0][name][0]
    for p in perfs[1:]:
        common = np.intersect1d(common, p[name][0])
    if len(common) == 0:
        return float("nan")
    rows = [p[name][1][np.intersect1d(p[name][0], common, return_indices=True)[1]] for p in perfs]
    return float(np.mean(np.std(np.stack(rows), axis=0, ddof=1)))


def work_figures(renderings: dict, pianists: list[dict]) -> dict:
    """Every rendering kind against every pianist and the pianists' mean; pairs; variety.

    renderings : {kind: [curves, ...]} (e.g. model, model_point, humanizer, deadpan).
    """
    res = {"n_pianists": len(pianists)}
    mc = mean_curve(pianists) if len(pianists) >= 2 else None
    for kind, rs in renderings.items():
        res[kind] = mean_results([compare(r, p) for r in rs for p in pianists])
        if mc is not None:
            res[kind + "_vs_mean"] = mean_results([compare(r, mc) for r in rs])
    pairs = [compare(a, b) for a, b in combinations(pianists, 2)]
    res["pianist_pairs"] = mean_results(pairs) if pairs else None
    if len(pianists) >= 2:  # each pianist against the mean of the others: the "vs mean" ceiling
        loo = [compare(p, mean_curve(pianists[:i] + pianists[i + 1:])) for i, p in enumerate(pianists)]
        res["pianist_vs_others_mean"] = mean_results(loo)
    model = renderings.get("model", [])
    res["variety"] = {name: {"model": spread(model, name), "pianists": spread(pianists, name)}
                      for name in ("velocity", "tempo")}
    for v in res["variety"].values():
        v["ratio"] = v["model"] / v["pianists"] if v["pianists"] and np.isfinite(v["pianists"]) else float("nan")
    return res


def average_works(per_work: dict, kinds: list[str]) -> dict:
    """Means over works: each kind over all works, the pairs and 'vs mean' over works with 2+ pianists."""
    done = {w: r for w, r in per_work.items() if "error" not in r}
    multi = [w for w, r in done.items() if r.get("pianist_pairs")]
    out = {"works": len(done), "works_with_pairs": len(multi),
           "performances": int(sum(r["n_pianists"] for r in done.values())),
           "performances_in_pair_works": int(sum(done[w]["n_pianists"] for w in multi))}

    def avg(results):
        out = {n: {m: _nanmean([r[n][m] for r in results]) for m in ("r", "mae")} for n in CURVES}
        out["pedal_lifts"] = {m: _nanmean([r["pedal_lifts"][m] for r in results if "pedal_lifts" in r])
                              for m in LIFT_METRICS}
        return out

    for k in kinds:
        out[k] = avg([done[w][k] for w in done])
        out[k + "_pair_works"] = avg([done[w][k] for w in multi])
        out[k + "_vs_mean"] = avg([done[w][k + "_vs_mean"] for w in multi if k + "_vs_mean" in done[w]])
    out["pianist_pairs"] = avg([done[w]["pianist_pairs"] for w in multi])
    out["pianist_vs_others_mean"] = avg([done[w]["pianist_vs_others_mean"] for w in multi])
    ratios = {n: np.array([done[w]["variety"][n]["ratio"] for w in multi], float) for n in ("velocity", "tempo")}
    out["variety"] = {n: {"geo_mean_ratio": float(np.exp(np.nanmean(np.log(v)))) if np.isfinite(v).any()
                          else float("nan"), "works": int(np.isfinite(v).sum())} for n, v in ratios.items()}
    return out


def plot_work(path, title: str, renderings: dict, pianists: list[dict]) -> None:
    """PNG: beat tempo (bpm) and beat velocity of the pianists (grey, their mean black) and the
    model's takes (blue) and point estimate (red) over score beats."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True)
    panels = ((axes[0], "tempo", "tempo (bpm, beat)"), (axes[1], "velocity_beat", "velocity (beat mean)"))
    for ax, name, label in panels:
        f = (lambda v: 2.0 ** v) if name == "tempo" else (lambda v: v)
        for i, p in enumerate(pianists):
            ax.plot(p[name][0], f(p[name][1]), color="0.75", lw=0.8, label="pianists" if i == 0 else None)
        if len(pianists) >= 2:
            mc = mean_curve(pianists)[name]
            ax.plot(mc[0], f(mc[1]), color="black", lw=1.6, label="pianists' mean")
        for i, r in enumerate(renderings.get("model", [])):
            ax.plot(r[name][0], f(r[name][1]), color="tab:blue", lw=1.0, alpha=0.8,
                    label="model takes" if i == 0 else None)
        for r in renderings.get("model_point", []):
            ax.plot(r[name][0], f(r[name][1]), color="tab:red", lw=1.4, ls="--", label="model point estimate")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_xlabel("score beat (quarter notes)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
