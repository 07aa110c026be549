"""Whole pieces rendered from the score alone against every pianist (DESIGN section 5, v2 protocol).

For each work: the score (as its longest performance played it, repeats included; markings and
marked tempo W from the MusicXML) is rendered with one scalar tempo, the median over the
work's pianists of their overall speed (g * W at the first marking), and nothing else from any
human. Renderings: the model sampled (``seeds`` takes at the default settings), the model's
point estimate (z at the prior mean, `ml.defaults.POINT_TEMPERATURE`: expected classes), the rule-based humanizer
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
Tempo dips (`tempo_dip`, `event_beats`): how far each curve falls below its median at the
marked fermatas and over the last beats, where pianists take the most time.

`whole_pieces` runs it over the works of a split (`work_score` reads a work's score from the
training data, `whole_work` renders and compares one); the command line is ml.evaluate.
"""
from __future__ import annotations

import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from numpy.lib import recfunctions as rfn

from ml.inference import point_temperature
from ml.metrics import mae, pearson
from render.baselines import deadpan, humanize
from render.dataset import load_aligned_cached, perf_key, unpack, xml_markings
from render.encoding import GP_FWHM_BEAT, encode, gp_tempo_curve, marked_tempo, onset_groups, tempo_ratio
from render.marks import marks_by_base_id
from render.pedal import pedal_for_take
from render.performance import PEDAL_DTYPE
from render.score import TEMPO_DTYPE, Score
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


def tempo_dip(curve: tuple, beats) -> float:
    """How far a tempo curve falls at ``beats`` (score beats): the mean of its log2 tempo there
    minus its median over the piece, in octaves (-1: half the piece's usual speed); nan where
    the curve has none of them."""
    kb, kv = curve
    sel = np.isin(kb, np.asarray(list(beats), np.int64))
    return float(np.mean(kv[sel]) - np.median(kv)) if sel.any() else float("nan")


def event_beats(score) -> dict:
    """The score beats where pianists take the most time: each marked fermata's beat and the one
    after it (``fermata``), and the last four beats of the piece (``end``)."""
    b = np.floor(score.notes["onset_beat"] + 1e-6).astype(np.int64)
    out = {"fermata": set(), "end": set(range(int(b.max()) - 3, int(b.max()) + 1)) if len(b) else set()}
    if score.marks is not None:
        f = np.unique(b[score.marks["fermata"] > 0])
        out["fermata"] = set(f.tolist()) | set((f + 1).tolist())
    return out


def work_figures(renderings: dict, pianists: list[dict], events: dict | None = None) -> dict:
    """Every rendering kind against every pianist and the pianists' mean; pairs; variety.

    renderings : {kind: [curves, ...]} (e.g. model, model_point, humanizer, deadpan).
    events : {name: score beats} (`event_beats`): each kind's and the pianists' mean `tempo_dip` there.
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
    res["tempo_dips"] = {kind: {e: _nanmean([tempo_dip(r["tempo"], bs) for r in rs])
                                for e, bs in (events or {}).items()}
                         for kind, rs in [*renderings.items(), ("pianists", pianists)]}
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
    # the pedal where the score marks it (Ped. ... *) and where it does not
    for name, marked in (("score_marks_pedal", True), ("score_marks_no_pedal", False)):
        ws = [w for w in multi if bool(done[w].get("score_marks_pedal")) == marked]
        out[name] = {"works": len(ws), **{k: avg([done[w][k] for w in ws]) if ws else None
                                          for k in ("model", "model_point", "humanizer", "pianist_pairs")}}
    out["pianist_vs_others_mean"] = avg([done[w]["pianist_vs_others_mean"] for w in multi])
    ratios = {n: np.array([done[w]["variety"][n]["ratio"] for w in multi], float) for n in ("velocity", "tempo")}
    # how deep the tempo falls at fermatas and over the last beats, mean over the works that have them
    def dip(w, k, e):
        return done[w].get("tempo_dips", {}).get(k, {}).get(e, float("nan"))

    kinds_dips = [k for k in kinds if any(k in done[w].get("tempo_dips", {}) for w in multi)] + ["pianists"]
    out["tempo_dips"] = {k: {e: _nanmean([dip(w, k, e) for w in multi]) for e in ("fermata", "end")}
                         for k in kinds_dips}
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


def work_score(rows: list[dict], data: Path, cache: Path):
    """The score of a work as its longest performance played it (repeats unfolded as played),
    with written dynamics, markings and marked tempo from the MusicXML; and W per note (bpm)."""
    row = max(rows, key=lambda r: int(r.get("score_notes") or 0))
    key = perf_key(row["match_file"])
    aligned = cache / "aligned" / f"{key}.npz"
    match = aligned if aligned.is_file() else unpack(data / row["match_file"], cache / "unpacked", row["match_file"])
    perf = load_aligned_cached(match, aligned)
    notes, marks = perf.score.notes.copy(), None
    tempo = np.full(len(notes), np.nan)
    if row.get("score_file") and row.get("score_file_present", "True") == "True":
        try:
            mk = cache / "markings" / (row["score_file"].replace("/", "__").removesuffix(".xz") + ".npz")
            info = xml_markings(unpack(data / row["score_file"], cache / "unpacked", row["score_file"]), mk)
            table = {nid: i for i, nid in enumerate(info["ids"].tolist())}
            j = np.array([table.get(b, -1) for b in perf.score.base_ids().tolist()])
            notes["velocity_written"] = np.where(j >= 0, info["velocity"][np.maximum(j, 0)], 0)
            tempo = np.where(j >= 0, info["tempo_bpm"][np.maximum(j, 0)], np.nan)
            marks = marks_by_base_id(notes["id"], info["ids"], info["marks"])
        except Exception as exc:  # markings are optional; the notes are in the match file
            print(f"warning: {row['score_file']}: no markings ({exc})", file=sys.stderr)
    notes["tempo_bpm"] = tempo
    return Score(notes=notes, marks=marks, source=str(match)), marked_tempo(tempo)


def with_tempo(score, written: np.ndarray):
    """A copy of ``score`` whose tempo (notes and marks) is ``written`` (N,) bpm."""
    notes = score.notes.copy()
    notes["tempo_bpm"] = written
    change = np.flatnonzero(np.concatenate([[True], np.abs(np.diff(written)) > 1e-6]))
    marks = np.array([(notes["onset_beat"][i], written[i], f"q={written[i]:g}") for i in change], TEMPO_DTYPE)
    _, keep = np.unique(marks["onset_beat"], return_index=True)
    return Score(notes=notes, tempo_marks=marks[np.sort(keep)], source=score.source, marks=score.marks)


def whole_work(renderer, score, W: np.ndarray, humans: list[dict], seeds: int, seed: int,
               temperature: float | None = None, plot: Path | None = None, title: str = "",
               z_temperature: float | None = None, gains: dict | None = None) -> dict:
    """Renderings of one work from the score alone against its pianists (this module's protocol);
    ``renderer`` is an ml.inference.Renderer."""
    n = score.notes
    pianists = []
    grace_of = dict(zip(n["id"].tolist(), n["is_grace"].tolist()))
    for h in humans:
        ok = np.isfinite(h["marked_bpm"])
        h["is_grace"] = np.array([grace_of.get(i, False) for i in h["score_id"].tolist()], bool)
        pianists.append(curves(h["score_id"][ok], h["onset_beat"][ok], h["perf"][ok, 0], h["perf"][ok, 1],
                                  h["perf"][ok, 2], h["marked_bpm"][ok], h["is_grace"][ok], pedal=h.get("pedal")))
    gs = [tempo_g(h) for h in humans]
    speed = float(np.median(gs))                       # the one scalar taken from the pianists
    written = W * speed
    base = float(np.clip(written[0], 20.0, 400.0))
    sw = with_tempo(score, written)

    def as_curves(r, pedal=True):
        r = np.sort(r, order="index") if "index" in r.dtype.names else r
        take = r if "index" in r.dtype.names else _with_index(r)
        ev = pedal_for_take(n["onset_beat"], take) if pedal else np.zeros(0, PEDAL_DTYPE)
        return curves(n["id"], n["onset_beat"], r["onset_sec"], r["duration_sec"], r["velocity"], W, n["is_grace"],
                         pedal=ev)

    kw = {} if temperature is None else {"temperature": temperature}
    if z_temperature is not None:
        kw["z_temperature"] = z_temperature
    gkw = {} if gains is None else {"gains": gains}
    takes = np.concatenate(list(renderer.render(score, seed=seed, mode="prior", variations=seeds,
                                                base_tempo_bpm=base, chunk_notes=4096, **kw, **gkw)))
    point = np.concatenate(list(renderer.render(score, seed=seed, mode="perturb", delta=np.zeros(5),
                                                temperature=point_temperature(), base_tempo_bpm=base,
                                                chunk_notes=4096, **gkw)))
    rend = {"model": [as_curves(takes[takes["variation"] == v]) for v in range(seeds)],
            "model_point": [as_curves(point)],
            "humanizer": [as_curves(humanize(sw, seed=seed + s)) for s in range(seeds)],
            "deadpan": [as_curves(deadpan(sw), pedal=False)]}   # and no pedal
    # the takes' mean per note and beat: what the sampled takes agree on (a diagnostic row)
    rend["model_take_mean"] = [mean_curve(rend["model"])] if seeds >= 2 else []
    res = work_figures(rend, pianists, event_beats(score))
    res["n_notes"], res["speed_g"] = int(len(n)), speed
    res["score_marks_pedal"] = bool(score.marks is not None and (score.marks["pedal"] > 0).any())
    res["pianist_median_bpm"] = float(np.median([p["median_bpm"] for p in pianists]))
    if plot is not None:
        plot_work(plot, f"{title} ({len(pianists)} pianists; model sampled at the default settings)", rend, pianists)
    return res


def _with_index(r: np.ndarray) -> np.ndarray:
    """A baseline's rows (one per score note, in score order) with their score index."""
    return rfn.append_fields(r, "index", np.arange(len(r), dtype=np.int32), usemask=False)


def tempo_g(h: dict) -> float:
    """A pianist's overall speed relative to the marked tempo."""
    ok = np.isfinite(h["marked_bpm"])
    grace = h["is_grace"][ok] if "is_grace" in h else None
    return tempo_ratio(h["onset_beat"][ok], h["perf"][ok, 0], h["marked_bpm"][ok], grace)


KINDS = ("model", "model_point", "model_take_mean", "humanizer", "deadpan")


def whole_pieces(renderer, works: dict, data: Path, cache: Path, seeds: int, seed: int,
                 temperature: float | None = None, plots: Path | None = None, n_plots: int = 6,
                 z_temperature: float | None = None, gains: dict | None = None) -> dict:
    """Run `whole_work` on every work; per-work results and means over works."""
    per_work = {}
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
    for i, (w, (rows, arrays)) in enumerate(sorted(works.items(), key=lambda kv: (-len(kv[1][0]), kv[0]))):
        t0 = time.time()
        png = plots / (w.replace("/", "_") + ".png") if plots is not None and i < n_plots else None
        try:
            score, W = work_score(rows, data, cache)
            per_work[w] = whole_work(renderer, score, W, arrays, seeds, seed, temperature=temperature, plot=png,
                                     title=w, z_temperature=z_temperature, gains=gains)
        except ValueError as exc:  # RenderError included: a score that cannot be read or rendered
            print(f"warning: {w}: left out of the whole-piece comparison ({exc})", file=sys.stderr)
            per_work[w] = {"error": str(exc)[:300]}
            continue
        per_work[w]["seconds"] = round(time.time() - t0, 1)
        print(f"  {w}: {per_work[w]['n_pianists']} pianists, {per_work[w]['seconds']} s", file=sys.stderr)
    return {"per_work": per_work, "mean": average_works(per_work, list(KINDS))}
