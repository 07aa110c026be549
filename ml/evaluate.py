"""Evaluate a CVRNN checkpoint against human performances (paper section 4.3, DESIGN section 5).

    python -m ml.evaluate --data ../shared/data [--split val] --json OUT.json [--checkpoint PATH]
        [--cache DIR] [--starts 100] [--seeds 3] [--max-perfs N] [--threads 1] [--jobs 1]

DIR is any folder laid out like ../shared/data (split.csv with match_file / score_file paths,
.xz or plain). Each performance is encoded once into ``--cache`` (render.dataset's npz format;
default .cache/eval/<hash of DIR>; ``--cache .cache/dataset`` reuses the training cache).

(a) Table 2 protocol per performance: ``--starts`` seeded start points s; the state is primed
    from zero by the inference network on the 20 human notes before s (z = posterior mean, c_n
    from the score encoder over the whole matched-note sequence, as in training); the next 40
    notes are decoded (the first 10 give the 10-note figures) with z = 0, z sampled from the
    primed prior, and z = the prior mean (x sampled from the heads, as the renderer does; also
    greedy x for the prior mean). Baseline "prime-mean": the mean of the 20 priming notes.
    Pooled r, within-performance r and MAE per parameter (ml.metrics).
(b) Whole pieces (ml.wholepiece, DESIGN section 5 v2 protocol): per work the score is rendered
    from the score alone with one scalar tempo (the pianists' median speed), the model sampled
    (``--seeds`` takes) and its point estimate, the humanizer and deadpan, each compared with
    every pianist (mean r and MAE) and with the pianists' mean curve: beat log tempo, velocity per
    note and per beat, duration and onset deviation; pianist pairs as the ceiling.
(c) Variety: spread across model takes over spread across the work's pianists (beat tempo,
    velocity). ``--plots DIR`` draws the tempo and velocity curves of a few works (PNG).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

# One BLAS thread: the tempo-curve solves of render.encoding run 10x slower with OpenBLAS
# threads on a busy 2-core machine. Effective only when numpy is not loaded yet (the CLI).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ml import metrics as M  # noqa: E402
from ml.data import load_piece, window_arrays  # noqa: E402
from ml.model import HEADS, classes_to_targets, targets_to_classes  # noqa: E402
from ml import wholepiece as WP  # noqa: E402
from render.dataset import build_work, load_aligned_cached, perf_key, read_split, unpack, xml_markings  # noqa: E402

PRIME, HORIZONS = 20, (10, 40)
METHODS_A = M.METHODS_A


# -- data ------------------------------------------------------------------------------------
def default_cache(data: Path) -> Path:
    return Path(".cache/eval") / hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:12]


def ensure_cache(data: Path, rows: list[dict], cache: Path, jobs: int = 1,
                 ) -> tuple[list[tuple[dict, Path]], list[dict]]:
    """Encode every performance of ``rows`` not yet in ``cache`` (render.dataset format),
    one work per task, ``jobs`` processes.

    Returns [(row, npz path)] of the usable ones and the problems met (failed builds).
    """
    by_work = defaultdict(list)
    for r in rows:
        by_work[(r["corpus"], r["work"])].append(r)
    problems, tasks = [], [(rs, data, cache, cache) for rs in by_work.values()]
    if jobs > 1:
        from multiprocessing import Pool
        with Pool(jobs) as pool:
            done = list(pool.imap_unordered(build_work, tasks))
    else:
        done = [build_work(t) for t in tasks]
    for results in done:
        for res in results:
            if res["status"] in ("failed", "warning"):
                problems.append(res)
                print(f"warning: {res['key']}: {res.get('error')}", file=sys.stderr)
    out = [(r, cache / r["split"] / f"{perf_key(r['match_file'])}.npz") for r in rows]
    return [(r, p) for r, p in out if p.exists()], problems


def load_arrays(path: Path) -> dict:
    with np.load(path) as z:
        d = {k: z[k] for k in ("target", "onset_beat", "marked_bpm", "score_id", "perf")}
        d["pedal"] = z["pedal"] if "pedal" in z.files else None
        d["meta"] = json.loads(str(z["meta"]))
    return d


# -- the model, batched over start points ------------------------------------------------------
@torch.inference_mode()
def piece_features(model, piece, block: int = 512) -> torch.Tensor:
    """c (M, c_dim) over a performance's matched notes, score GRU state carried across blocks;
    the beat context over the whole score once."""
    enc, hs, out = model.score, None, []
    ctx = enc.context(torch.from_numpy(piece.beat_ctx.T.copy())[None])
    for s in range(0, piece.n, block):
        feat, roll, pos, *_ = window_arrays(piece, s, min(s + block, piece.n))
        bp = torch.from_numpy(piece.beat[s:min(s + block, piece.n)].astype(np.int64))[None]
        c, hs = enc(torch.from_numpy(feat.astype(np.int64))[None], torch.from_numpy(roll).float()[None],
                    torch.from_numpy(pos.astype(np.int64))[None], None, bp, hs, ctx=ctx)
        out.append(c[0])
    return torch.cat(out)


@torch.inference_mode()
def prime_batch(model, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Teacher-forced inference network from the zero state, z = posterior mean (`CVRNN.prime`).

    c (V, T, c_dim), x (V, T, H) long classes -> h (layers, V, H). Same steps as Renderer.prime.
    """
    return model.prime(c, x, model.init_state(x.shape[0])[0])


@torch.inference_mode()
def decode_batch(model, c: torch.Tensor, h: torch.Tensor, gen: torch.Generator, *, z_mode: str,
                 greedy: bool = False, scope: torch.Tensor | None = None, x_prev: torch.Tensor | None = None,
                 ) -> torch.Tensor:
    """Free-running generation for V streams with their own features (`CVRNN.step`).

    c (V, T, c_dim), h (layers, V, H); z_mode 'zero' | 'prior' (sample) | 'prior_mean';
    greedy takes each head's most likely class instead of sampling it; scope (V, T, heads) bool
    and x_prev (V, heads) as in Renderer.decode_steps. Returns classes (V, T, heads).
    The random draws follow Renderer.decode_steps (z noise, then one uniform per head).
    """
    if z_mode not in ("zero", "prior", "prior_mean"):
        raise ValueError(f"unknown z_mode {z_mode!r}")
    V, T = c.shape[:2]
    c_gen, c_state = model.precompute(c)
    temps = np.full(len(HEADS), 0.0 if greedy else 1.0, np.float32)
    out = []
    for t in range(T):
        eps = torch.randn((V, model.cfg.z_dim), generator=gen) if z_mode == "prior" else None
        z = model.draw_z(h[-1], z_mode, eps=eps)
        u = torch.rand((V, len(HEADS)), generator=gen)
        x_prev, h = model.step(h, c_gen[:, t], c_state[:, t], z, u, temps,
                               keep=None if scope is None else ~scope[:, t], x_prev=x_prev)
        out.append(x_prev)
    return torch.stack(out, 1)


def table2_performance(model, piece, starts: np.ndarray, seed: int) -> dict:
    """Predictions (S, 40, 4) of every method and the human values for one performance
    (the four parameters of the paper's Table 2; the pedal heads are decoded, not scored)."""
    horizon = max(HORIZONS)
    target = piece.target.astype(np.int64)
    human = M.gather_windows(target, starts, horizon).astype(float)[..., :4]
    preds = {"prime_mean": M.prime_mean(target[:, :4], starts, PRIME, horizon)}
    c = piece_features(model, piece)
    x = targets_to_classes(torch.from_numpy(target))
    prime_idx = torch.from_numpy(starts[:, None] - PRIME + np.arange(PRIME)[None])
    next_idx = torch.from_numpy(starts[:, None] + np.arange(horizon)[None])
    h = prime_batch(model, c[prime_idx], x[prime_idx])
    gen = torch.Generator().manual_seed(seed)
    scope = torch.from_numpy(piece.scope)[next_idx]
    x_prev = x[torch.from_numpy(starts - 1)]
    for name, z_mode, greedy in (("model_z0", "zero", False), ("model_prior", "prior", False),
                                 ("model_prior_mean", "prior_mean", False),
                                 ("model_prior_mean_greedy", "prior_mean", True)):
        cls = decode_batch(model, c[next_idx], h, gen, z_mode=z_mode, greedy=greedy, scope=scope, x_prev=x_prev)
        preds[name] = classes_to_targets(cls).numpy().astype(float)[..., :4]
    return {"human": human, **preds}


def table2(model, pieces: list, n_starts: int, seed: int) -> dict:
    """The Table 2 protocol over a split: {method: {param: {'10': metrics, '40': metrics}}}."""
    per = defaultdict(list)
    for i, piece in enumerate(pieces):
        starts = M.start_points(piece.n, n_starts, PRIME, max(HORIZONS), (seed, i))
        if len(starts) == 0:
            continue
        for k, v in table2_performance(model, piece, starts, seed + i).items():
            per[k].append(v)
    out = {}
    for method in METHODS_A:
        out[method] = {}
        for j, name in enumerate(M.PARAMS):
            out[method][name] = {str(hz): M.pooled_within([p[:, :hz, j] for p in per[method]],
                                                          [p[:, :hz, j] for p in per["human"]])
                                 for hz in HORIZONS}
    return out


# -- whole pieces --------------------------------------------------------------------------------
def work_score(rows: list[dict], data: Path, cache: Path):
    """The score of a work as its longest performance played it (repeats unfolded as played),
    with written dynamics, markings and marked tempo from the MusicXML; and W per note (bpm)."""
    from render.encoding import marked_tempo
    from render.marks import marks_by_base_id
    from render.score import Score
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
            src = mk if mk.is_file() else unpack(data / row["score_file"], cache / "unpacked", row["score_file"])
            info = xml_markings(src, mk)
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
    from render.score import TEMPO_DTYPE, Score
    notes = score.notes.copy()
    notes["tempo_bpm"] = written
    change = np.flatnonzero(np.concatenate([[True], np.abs(np.diff(written)) > 1e-6]))
    marks = np.array([(notes["onset_beat"][i], written[i], f"q={written[i]:g}") for i in change], TEMPO_DTYPE)
    _, keep = np.unique(marks["onset_beat"], return_index=True)
    return Score(notes=notes, tempo_marks=marks[np.sort(keep)], source=score.source, marks=score.marks)


def whole_work(renderer, score, W: np.ndarray, humans: list[dict], seeds: int, seed: int,
               temperature: float | None = None, plot: Path | None = None, title: str = "",
               z_temperature: float | None = None) -> dict:
    """Renderings of one work from the score alone against its pianists (ml.wholepiece)."""
    from render.baselines import deadpan, humanize
    from render.pedal import pedal_for_take
    from render.performance import PEDAL_DTYPE
    n = score.notes
    pianists = []
    grace_of = dict(zip(n["id"].tolist(), n["is_grace"].tolist()))
    for h in humans:
        ok = np.isfinite(h["marked_bpm"])
        h["is_grace"] = np.array([grace_of.get(i, False) for i in h["score_id"].tolist()], bool)
        pianists.append(WP.curves(h["score_id"][ok], h["onset_beat"][ok], h["perf"][ok, 0], h["perf"][ok, 1],
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
        return WP.curves(n["id"], n["onset_beat"], r["onset_sec"], r["duration_sec"], r["velocity"], W, n["is_grace"],
                         pedal=ev)

    kw = {} if temperature is None else {"temperature": temperature}
    if z_temperature is not None:
        kw["z_temperature"] = z_temperature
    takes = np.concatenate(list(renderer.render(score, seed=seed, mode="prior", variations=seeds,
                                                base_tempo_bpm=base, chunk_notes=4096, **kw)))
    point = np.concatenate(list(renderer.render(score, seed=seed, mode="perturb", delta=np.zeros(5),
                                                temperature=0.0, base_tempo_bpm=base, chunk_notes=4096)))
    rend = {"model": [as_curves(takes[takes["variation"] == v]) for v in range(seeds)],
            "model_point": [as_curves(point)],
            "humanizer": [as_curves(humanize(sw, seed=seed + s)) for s in range(seeds)],
            "deadpan": [as_curves(deadpan(sw), pedal=False)]}   # and no pedal
    res = WP.work_figures(rend, pianists)
    res["n_notes"], res["speed_g"] = int(len(n)), speed
    res["pianist_median_bpm"] = float(np.median([p["median_bpm"] for p in pianists]))
    if plot is not None:
        WP.plot_work(plot, f"{title} ({len(pianists)} pianists; model sampled at the default settings)", rend, pianists)
    return res


def _with_index(r: np.ndarray) -> np.ndarray:
    """A baseline's rows (one per score note, in score order) with their score index."""
    from numpy.lib import recfunctions as rfn
    return rfn.append_fields(r, "index", np.arange(len(r), dtype=np.int32), usemask=False)


def tempo_g(h: dict) -> float:
    """A pianist's overall speed relative to the marked tempo."""
    from render.encoding import tempo_ratio
    ok = np.isfinite(h["marked_bpm"])
    grace = h["is_grace"][ok] if "is_grace" in h else None
    return tempo_ratio(h["onset_beat"][ok], h["perf"][ok, 0], h["marked_bpm"][ok], grace)


KINDS = ("model", "model_point", "humanizer", "deadpan")


def whole_pieces(renderer, works: dict, data: Path, cache: Path, seeds: int, seed: int,
                 temperature: float | None = None, plots: Path | None = None, n_plots: int = 6,
                 z_temperature: float | None = None) -> dict:
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
                                     title=w, z_temperature=z_temperature)
        except ValueError as exc:  # RenderError included: a score that cannot be read or rendered
            print(f"warning: {w}: left out of the whole-piece comparison ({exc})", file=sys.stderr)
            per_work[w] = {"error": str(exc)[:300]}
            continue
        per_work[w]["seconds"] = round(time.time() - t0, 1)
        print(f"  {w}: {per_work[w]['n_pianists']} pianists, {per_work[w]['seconds']} s", file=sys.stderr)
    return {"per_work": per_work, "mean": WP.average_works(per_work, list(KINDS))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with split.csv (like ../shared/data)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--json", type=Path, required=True, help="write the results here")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: MODEL_CHECKPOINT, else the shipped one")
    ap.add_argument("--cache", type=Path, default=None, help="encoded performances (default .cache/eval/<hash>)")
    ap.add_argument("--head-temperatures", default=None,
                    help="comma-separated sampling temperature per head (velocity, duration, deviation, tempo, "
                         "sustain, soft) for the whole-piece renderings (default: the renderer's)")
    ap.add_argument("--z-temperature", type=float, default=None,
                    help="spread of z around the prior mean in the sampled whole-piece renderings "
                         "(default: the renderer's)")
    ap.add_argument("--plots", type=Path, default=None, help="draw tempo and velocity curves of a few works here (PNG)")
    ap.add_argument("--starts", type=int, default=100, help="start points per performance (Table 2)")
    ap.add_argument("--seeds", type=int, default=3, help="model and humanizer samples per work")
    ap.add_argument("--max-perfs", type=int, default=0, help="at most this many performances (0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--jobs", type=int, default=1, help="processes encoding performances not yet cached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-whole", action="store_true", help="skip the whole-piece renderings (b, c)")
    ap.add_argument("--no-table2", action="store_true", help="skip the Table 2 protocol (a)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature of the whole-piece renderings (default: the renderer's)")
    args = ap.parse_args(argv)
    if args.head_temperatures:
        try:
            args.temperature = [float(v) for v in args.head_temperatures.split(",")]
        except ValueError:
            print("error: --head-temperatures takes comma-separated numbers", file=sys.stderr)
            return 2
    if args.starts < 1 or not 1 <= args.seeds <= 64:
        print("error: --starts must be positive and --seeds between 1 and 64", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    warnings.simplefilter("ignore")
    t0 = time.time()
    from ml.inference import Renderer
    try:
        from ml.data import EXTRA_VAL_WORKS
        rows = [r for r in read_split(args.data) if r["split"] == args.split
                or (args.split == "val" and r["split"] == "train" and r["work"] in EXTRA_VAL_WORKS)]
        renderer = Renderer.load(args.checkpoint, device="cpu")
    except (FileNotFoundError, KeyError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.max_perfs:
        rows = rows[: args.max_perfs]
    if not rows:
        print(f"error: no performances of split {args.split!r} in {args.data / 'split.csv'}", file=sys.stderr)
        return 2
    cache = args.cache or default_cache(args.data)
    usable, problems = ensure_cache(args.data, rows, cache, args.jobs)
    if not usable:
        print("error: no performance could be encoded", file=sys.stderr)
        return 2
    print(f"{len(usable)} performances ready ({time.time() - t0:.0f} s); Table 2 protocol", file=sys.stderr)
    pieces = [load_piece(p) for _, p in usable]
    res = {"data": str(args.data), "split": args.split, "cache": str(cache),
           "checkpoint": str(args.checkpoint or "default"),
           "checkpoint_meta": {k: v for k, v in renderer.meta.items() if k in ("step", "epoch", "val")},
           "n_performances": len(usable), "n_starts": args.starts, "seeds": args.seeds, "seed": args.seed,
           "temperature": args.temperature, "z_temperature": args.z_temperature,
           "problems": problems, "paper_table2": {p: {str(k): v for k, v in d.items()}
                                                  for p, d in M.PAPER_TABLE2.items()}}
    res["table2"] = None if args.no_table2 else table2(renderer.model, pieces, args.starts, args.seed)
    res["seconds_table2"] = round(time.time() - t0, 1)
    if not args.no_whole:
        print("whole pieces", file=sys.stderr)
        works = defaultdict(lambda: ([], []))
        for r, p in usable:
            works[r["work"]][0].append(r)
            works[r["work"]][1].append(load_arrays(p))
        res["whole_piece"] = whole_pieces(renderer, works, args.data, cache, args.seeds, args.seed,
                                          temperature=args.temperature, plots=args.plots,
                                          z_temperature=args.z_temperature)
    res["targets"] = M.targets(res["table2"], res.get("whole_piece"))
    res["seconds"] = round(time.time() - t0, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(M.no_nan(res), indent=1, allow_nan=False))
    print(M.format_report(res))
    print(f"({res['seconds']:.0f} s; JSON in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
