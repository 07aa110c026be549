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
(b) Whole pieces: per work the score of its longest performance is rendered from the score
    alone by the model (``--seeds`` samples of the prior, and z = 0), deadpan and the humanizer
    (``--seeds`` seeds); every rendering and every human is encoded with the same written
    tempo (the median over the work's performances of the builder's written tempo, per note)
    and compared with each human performance on the notes both played (r of a constant series
    counts as 0); every pair of pianists of the work gives the ceiling.
(c) Variety: spread across model samples over spread across the work's pianists (tempo and
    velocity, per note std averaged over the notes every pianist played).
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
import torch.nn.functional as F  # noqa: E402

from ml import metrics as M  # noqa: E402
from ml.data import load_piece, window_arrays  # noqa: E402
from ml.model import HEADS, classes_to_targets, targets_to_classes  # noqa: E402
from render.dataset import build_work, perf_key, read_split, unpack  # noqa: E402
from render.encoding import encode  # noqa: E402

PRIME, HORIZONS = 20, (10, 40)
METHODS_A = M.METHODS_A


# -- data ------------------------------------------------------------------------------------
def default_cache(data: Path, tempo_window_beat: float = 8.0) -> Path:
    key = str(data.resolve()) + ("" if tempo_window_beat == 8.0 else f"|{tempo_window_beat:g}")
    return Path(".cache/eval") / hashlib.sha1(key.encode()).hexdigest()[:12]


def ensure_cache(data: Path, rows: list[dict], cache: Path, jobs: int = 1, tempo_window_beat: float = 8.0,
                 ) -> tuple[list[tuple[dict, Path]], list[dict]]:
    """Encode every performance of ``rows`` not yet in ``cache`` (render.dataset format),
    one work per task, ``jobs`` processes, the tempo targets against a local reference over
    ``tempo_window_beat`` beats (the window the model was trained with).

    Returns [(row, npz path)] of the usable ones and the problems met (failed builds).
    """
    by_work = defaultdict(list)
    for r in rows:
        by_work[(r["corpus"], r["work"])].append(r)
    problems, tasks = [], [(rs, data, cache, cache, tempo_window_beat) for rs in by_work.values()]
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
        d = {k: z[k] for k in ("target", "onset_beat", "written_bpm", "score_id", "perf")}
        d["meta"] = json.loads(str(z["meta"]))
    return d


# -- the model, batched over start points ------------------------------------------------------
@torch.inference_mode()
def piece_features(model, piece, block: int = 512) -> torch.Tensor:
    """c (M, c_dim) over a performance's matched notes, score GRU state carried across blocks."""
    enc, hs, out = model.score, None, []
    for s in range(0, piece.n, block):
        feat, roll, pos, _ = window_arrays(piece, s, min(s + block, piece.n))
        c, hs = enc(torch.from_numpy(feat.astype(np.int64))[None], torch.from_numpy(roll).float()[None],
                    torch.from_numpy(pos.astype(np.int64))[None], hs)
        out.append(c[0])
    return torch.cat(out)


@torch.inference_mode()
def prime_batch(model, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Teacher-forced inference network from the zero state, z = posterior mean.

    c (V, T, c_dim), x (V, T, 4) long classes -> h (layers, V, H). Same steps as Renderer.prime.
    """
    V, T = x.shape[:2]
    h = model.init_state(V)[0]
    phi = model.embed_x(x)
    for t in range(T):
        mq, _ = model.post_out(model.post(torch.cat([h[-1], phi[:, t]], -1))).chunk(2, -1)
        h = model.step_state(h, model.state_in(torch.cat([c[:, t], phi[:, t], model.psi(mq)], -1)))
    return h


@torch.inference_mode()
def decode_batch(model, c: torch.Tensor, h: torch.Tensor, gen: torch.Generator, *, z_mode: str,
                 greedy: bool = False) -> torch.Tensor:
    """Free-running generation for V streams with their own features.

    c (V, T, c_dim), h (layers, V, H); z_mode 'zero' | 'prior' (sample) | 'prior_mean';
    greedy takes each head's most likely class instead of sampling it. Returns classes (V, T, 4).
    The random draws follow Renderer.decode_steps (z noise, then one uniform per head).
    """
    V, T = c.shape[:2]
    sizes = list(HEADS.values())
    cu, U = c.shape[-1], model.cfg.dense_units
    W, g0 = model.state_in.weight, model.gen[0]
    c_state = F.linear(c, W[:, :cu], model.state_in.bias)      # (V, T, S): the score's parts,
    c_gen = F.linear(c, g0.weight[:, :cu], g0.bias)            # (V, T, U)  once for all steps
    W_phi, W_psi, Wg_psi = W[:, cu:cu + U], W[:, cu + U:], g0.weight[:, cu:]
    out = []
    for t in range(T):
        if z_mode == "zero":  # the prior is not needed
            z = torch.zeros((V, model.cfg.z_dim))
        elif z_mode == "prior":
            mu, lv = model.prior_params(h[-1])
            z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * lv)
        elif z_mode == "prior_mean":
            z = model.prior_params(h[-1])[0]
        else:
            raise ValueError(f"unknown z_mode {z_mode!r}")
        ps = model.psi(z)
        hid = F.leaky_relu(c_gen[:, t] + F.linear(ps, Wg_psi), 0.1)
        logits = model.gen[4](F.leaky_relu(model.gen[2](hid), 0.1))
        u = torch.rand((V, len(sizes)), generator=gen)
        cls = []
        for k, part in enumerate(logits.split(sizes, -1)):
            if greedy:
                cls.append(part.argmax(-1))
            else:
                cdf = torch.softmax(part, -1).cumsum(-1)
                cls.append((cdf < u[:, k:k + 1] * cdf[:, -1:]).sum(-1).clamp(max=part.shape[-1] - 1))
        x = torch.stack(cls, -1)
        h = model.step_state(h, c_state[:, t] + F.linear(model.embed_x(x), W_phi) + F.linear(ps, W_psi))
        out.append(x)
    return torch.stack(out, 1)


def table2_performance(model, piece, starts: np.ndarray, seed: int) -> dict:
    """Predictions (S, 40, 4) of every method and the human values for one performance."""
    horizon = max(HORIZONS)
    target = piece.target.astype(np.int64)
    human = M.gather_windows(target, starts, horizon).astype(float)
    preds = {"prime_mean": M.prime_mean(target, starts, PRIME, horizon)}
    c = piece_features(model, piece)
    x = targets_to_classes(torch.from_numpy(target))
    prime_idx = torch.from_numpy(starts[:, None] - PRIME + np.arange(PRIME)[None])
    next_idx = torch.from_numpy(starts[:, None] + np.arange(horizon)[None])
    h = prime_batch(model, c[prime_idx], x[prime_idx])
    gen = torch.Generator().manual_seed(seed)
    for name, z_mode, greedy in (("model_z0", "zero", False), ("model_prior", "prior", False),
                                 ("model_prior_mean", "prior_mean", False),
                                 ("model_prior_mean_greedy", "prior_mean", True)):
        cls = decode_batch(model, c[next_idx], h, gen, z_mode=z_mode, greedy=greedy)
        preds[name] = classes_to_targets(cls).numpy().astype(float)
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
def work_score(row: dict, data: Path, cache: Path):
    """The score as the row's pianist played it (match file), written dynamics from the MusicXML;
    its notes are kept in the cache (a match file takes seconds to parse)."""
    from render.score import Score
    dst = cache / "unpacked" / ".eval_scores" / f"{perf_key(row['match_file'])}.npy"
    if dst.exists():
        return Score(notes=np.load(dst), source=str(dst))
    from render.dataset import _xml_markings
    from render.performance import load_aligned
    score = load_aligned(unpack(data / row["match_file"], cache / "unpacked", row["match_file"])).score
    notes = score.notes.copy()
    if row.get("score_file") and row.get("score_file_present", "True") == "True":
        try:
            vel, _ = _xml_markings(unpack(data / row["score_file"], cache / "unpacked", row["score_file"]))
            notes["velocity_written"] = [vel.get(b, 0) for b in score.base_ids()]
        except Exception as exc:  # markings are optional; the notes are in the match file
            print(f"warning: {row['score_file']}: no written dynamics ({exc})", file=sys.stderr)
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.save(dst, notes)
    return Score(notes=notes, source=str(dst))


def with_written_tempo(score, written: np.ndarray):
    """A copy of ``score`` whose tempo (notes and marks) is ``written`` (N,) bpm."""
    from render.score import TEMPO_DTYPE, Score
    notes = score.notes.copy()
    notes["tempo_bpm"] = written
    change = np.flatnonzero(np.concatenate([[True], np.abs(np.diff(written)) > 1e-6]))
    marks = np.array([(notes["onset_beat"][i], written[i], f"q={written[i]:g}") for i in change], TEMPO_DTYPE)
    _, keep = np.unique(marks["onset_beat"], return_index=True)
    return Score(notes=notes, tempo_marks=marks[np.sort(keep)], source=score.source)


def common_written(score_ids: np.ndarray, humans: list[dict]) -> np.ndarray:
    """Per score note, the median of the performances' written tempi (bpm), filled along the score."""
    vals = defaultdict(list)
    for h in humans:
        for sid, w in zip(h["score_id"].tolist(), h["written_bpm"].tolist()):
            vals[sid].append(w)
    w = np.array([np.median(vals[s]) if s in vals else np.nan for s in score_ids.tolist()])
    ok = np.flatnonzero(np.isfinite(w))
    if len(ok) == 0:
        return np.full(len(w), float(np.median(np.concatenate([h["written_bpm"] for h in humans]))))
    return w[ok[np.clip(np.searchsorted(ok, np.arange(len(w)), side="right") - 1, 0, None)]]


def encoded(onset_beat, written, onset_sec, duration_sec, velocity, is_grace=None) -> np.ndarray:
    enc, _, _ = encode(np.asarray(onset_beat, float), np.asarray(written, float), np.asarray(onset_sec, float),
                       np.asarray(duration_sec, float), np.asarray(velocity, float), is_grace)
    return np.stack([enc[k] for k in M.PARAMS], 1).astype(float)


def whole_work(renderer, score, humans: list[dict], seeds: int, seed: int, temperature: float | None = None) -> dict:
    """Renderings of one work against its human performances; agreement, ceiling and variety."""
    from render.baselines import deadpan, humanize
    ids = score.notes["id"]
    written = common_written(ids, humans)
    score = with_written_tempo(score, written)
    n = score.notes
    pos = {s: i for i, s in enumerate(ids.tolist())}

    def enc_rendering(r):
        return encoded(n["onset_beat"], written, r["onset_sec"], r["duration_sec"], r["velocity"], n["is_grace"])

    kw = {} if temperature is None else {"temperature": temperature}
    chunks = np.concatenate(list(renderer.render(score, seed=seed, mode="prior", variations=seeds,
                                                 chunk_notes=4096, **kw)))
    model = [enc_rendering(np.sort(chunks[chunks["variation"] == v], order="index")) for v in range(seeds)]
    z0 = np.concatenate(list(renderer.render(score, seed=seed, mode="fixed", chunk_notes=4096, **kw)))
    rend = {"model": model, "model_z0": [enc_rendering(np.sort(z0, order="index"))],
            "deadpan": [enc_rendering(deadpan(score))],
            "humanizer": [enc_rendering(humanize(score, seed=seed + s)) for s in range(seeds)]}
    hum = []  # (score-note indices, encoded (M, 4)) per human, notes outside the score dropped
    for h in humans:
        idx = np.array([pos.get(s, -1) for s in h["score_id"].tolist()])
        w_h = np.where(idx >= 0, written[np.maximum(idx, 0)], h["written_bpm"])
        e = encoded(h["onset_beat"], w_h, h["perf"][:, 0], h["perf"][:, 1], h["perf"][:, 2])
        hum.append((idx[idx >= 0], e[idx >= 0]))
    res = {k: M.mean_of([M.compare(r[i], e) for r in rs for i, e in hum]) for k, rs in rend.items()}
    pairs = []
    for k, (ia, a) in enumerate(hum):
        for ib, b in hum[k + 1:]:
            _, ja, jb = np.intersect1d(ia, ib, return_indices=True)
            pairs.append(M.compare(a[ja], b[jb]))
    res["human_pairs"] = M.mean_of(pairs) if pairs else None
    res["n_humans"], res["n_notes"] = len(hum), int(len(n))
    if len(hum) >= 2:
        common = np.array(sorted(set.intersection(*(set(i.tolist()) for i, _ in hum))), int)
        if len(common) >= 2:
            H = np.stack([e[np.intersect1d(i, common, return_indices=True)[1]] for i, e in hum])
            Mo = np.stack(model)[:, common]
            var = {}
            for k, name in ((0, "velocity"), (3, "tempo_dev_bpm")):
                sm, sh = M.spread(Mo[:, :, k]), M.spread(H[:, :, k])
                var[name] = {"model_spread": sm, "human_spread": sh, "ratio": sm / sh if sh > 0 else float("nan")}
            res["variety"] = dict(var, n_notes=int(len(common)))
    return res


def whole_pieces(renderer, works: dict, data: Path, cache: Path, seeds: int, seed: int,
                 temperature: float | None = None) -> dict:
    """Run `whole_work` on every work; per-work results and means over works."""
    per_work = {}
    for w, (rows, arrays) in sorted(works.items()):
        ref = max(range(len(rows)), key=lambda i: len(arrays[i]["score_id"]))
        t0 = time.time()
        try:
            per_work[w] = whole_work(renderer, work_score(rows[ref], data, cache), arrays, seeds, seed,
                                      temperature=temperature)
        except ValueError as exc:  # RenderError included: a score that cannot be read or rendered
            print(f"warning: {w}: left out of the whole-piece comparison ({exc})", file=sys.stderr)
            per_work[w] = {"error": str(exc)[:300]}
            continue
        per_work[w]["seconds"] = round(time.time() - t0, 1)
        print(f"  {w}: {per_work[w]['n_humans']} humans, {per_work[w]['seconds']} s", file=sys.stderr)
    out = {"per_work": per_work, "mean": {}, "mean_all_works": {}}
    done = {w: r for w, r in per_work.items() if "error" not in r}
    multi = [w for w, r in done.items() if r["human_pairs"] is not None]
    for key in ("model", "model_z0", "humanizer", "deadpan", "human_pairs"):
        out["mean"][key] = M.average([per_work[w][key] for w in multi])
        if key != "human_pairs":
            out["mean_all_works"][key] = M.average([r[key] for r in done.values()])
    ratios = {name: [per_work[w]["variety"][name]["ratio"] for w in multi if "variety" in per_work[w]]
              for name in ("velocity", "tempo_dev_bpm")}
    out["variety"] = {k: {"mean_ratio": float(np.nanmean(v)) if v else float("nan"),
                          "geo_mean_ratio": float(np.exp(np.nanmean(np.log(v)))) if v else float("nan")}
                      for k, v in ratios.items()}
    out["works_with_pairs"] = multi
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with split.csv (like ../shared/data)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--json", type=Path, required=True, help="write the results here")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: MODEL_CHECKPOINT, else the shipped one")
    ap.add_argument("--cache", type=Path, default=None, help="encoded performances (default .cache/eval/<hash>)")
    ap.add_argument("--tempo-window", type=float, default=8.0,
                    help="beats of the local reference tempo the model was trained with (render.dataset --tempo-window)")
    ap.add_argument("--starts", type=int, default=100, help="start points per performance (Table 2)")
    ap.add_argument("--seeds", type=int, default=3, help="model and humanizer samples per work")
    ap.add_argument("--max-perfs", type=int, default=0, help="at most this many performances (0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--jobs", type=int, default=1, help="processes encoding performances not yet cached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-whole", action="store_true", help="skip the whole-piece renderings (b, c)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature of the whole-piece renderings (default: the renderer's)")
    args = ap.parse_args(argv)
    if args.starts < 1 or not 1 <= args.seeds <= 64:
        print("error: --starts must be positive and --seeds between 1 and 64", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    warnings.simplefilter("ignore")
    t0 = time.time()
    from ml.inference import Renderer
    try:
        rows = [r for r in read_split(args.data) if r["split"] == args.split]
        renderer = Renderer.load(args.checkpoint, device="cpu")
    except (FileNotFoundError, KeyError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.max_perfs:
        rows = rows[: args.max_perfs]
    if not rows:
        print(f"error: no performances of split {args.split!r} in {args.data / 'split.csv'}", file=sys.stderr)
        return 2
    cache = args.cache or default_cache(args.data, args.tempo_window)
    usable, problems = ensure_cache(args.data, rows, cache, args.jobs, args.tempo_window)
    if not usable:
        print("error: no performance could be encoded", file=sys.stderr)
        return 2
    print(f"{len(usable)} performances ready ({time.time() - t0:.0f} s); Table 2 protocol", file=sys.stderr)
    pieces = [load_piece(p) for _, p in usable]
    res = {"data": str(args.data), "split": args.split, "cache": str(cache),
           "checkpoint": str(args.checkpoint or "default"),
           "checkpoint_meta": {k: v for k, v in renderer.meta.items() if k in ("step", "epoch", "val")},
           "n_performances": len(usable), "n_starts": args.starts, "seeds": args.seeds, "seed": args.seed,
           "temperature": args.temperature,
           "problems": problems, "paper_table2": {p: {str(k): v for k, v in d.items()}
                                                  for p, d in M.PAPER_TABLE2.items()}}
    res["table2"] = table2(renderer.model, pieces, args.starts, args.seed)
    res["seconds_table2"] = round(time.time() - t0, 1)
    if not args.no_whole:
        print("whole pieces", file=sys.stderr)
        works = defaultdict(lambda: ([], []))
        for r, p in usable:
            works[r["work"]][0].append(r)
            works[r["work"]][1].append(load_arrays(p))
        res["whole_piece"] = whole_pieces(renderer, works, args.data, cache, args.seeds, args.seed,
                                          temperature=args.temperature)
    res["targets"] = M.targets(res["table2"], res.get("whole_piece"))
    res["seconds"] = round(time.time() - t0, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(M.no_nan(res), indent=1, allow_nan=False))
    print(M.format_report(res))
    print(f"({res['seconds']:.0f} s; JSON in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
