"""Evaluate a CVRNN checkpoint against human performances (paper section 4.3, DESIGN section 5).

    python -m ml.evaluate --data ../shared/data [--split val] --json OUT.json [--checkpoint PATH]
        [--cache DIR] [--starts 100] [--seeds 3] [--max-perfs N] [--threads 1] [--jobs 1]

DIR is any folder laid out like ../shared/data (split.csv with match_file / score_file paths,
.xz or plain). Each performance is encoded once into ``--cache`` (render.dataset's npz format;
default .cache/eval/<hash of DIR>; ``--cache .cache/dataset`` reuses the training cache).

(a) Table 2 protocol per performance (ml.table2): ``--starts`` seeded start points s; the state
    is primed from zero by the inference network on the 20 human notes before s (z = posterior
    mean, c_n from the score encoder over the whole matched-note sequence, as in training); the
    next 40 notes are decoded (the first 10 give the 10-note figures) with z = 0, z sampled from
    the primed prior, and z = the prior mean (x sampled from the heads, as the renderer does;
    also greedy x for the prior mean). Baseline "prime-mean": the mean of the 20 priming notes.
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
from ml.data import load_piece  # noqa: E402
from ml.table2 import table2  # noqa: E402
from ml.wholepiece import whole_pieces  # noqa: E402
from render.dataset import build_work, perf_key, read_split  # noqa: E402


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


def score_versions(usable: list[tuple[dict, Path]]) -> dict:
    """The whole-piece comparison's units: a work's performances grouped by the score they are
    aligned to (its ``score_file``; the match file's folder where there is none).

    A work can come in versions whose unfolded scores differ (nASAP's ``_no_repeat`` folders
    beside the repeats, Batik's edition beside nASAP's): score positions and note ids of one do
    not line up with the other's, so each version is rendered and compared on its own. A work
    with one version keeps its name; otherwise each is named ``work [corpus folder]``.

    Returns {name: ([row, ...], [arrays, ...])}, arrays as `load_arrays` gives them.
    """
    def version(r: dict) -> str:
        return r.get("score_file") or r["match_file"].rsplit("/", 1)[0]

    by_work = defaultdict(lambda: defaultdict(list))
    for r, p in usable:
        by_work[r["work"]][version(r)].append((r, p))
    works = {}
    for work, versions in by_work.items():
        for items in versions.values():
            r0 = items[0][0]
            folder = r0["match_file"].rsplit("/", 2)[-2]
            name = work if len(versions) == 1 else f"{work} [{r0['corpus']} {folder}]"
            works[name] = ([r for r, _ in items], [load_arrays(p) for _, p in items])
    return works


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
    ap.add_argument("--gains", type=json.loads, default=None,
                    help='gain per head on the whole-piece renderings\' deviations, JSON, e.g. '
                         '\'{"tempo": 1.5, "velocity": 1.2}\' (default: 1)')
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
           "temperature": args.temperature, "z_temperature": args.z_temperature, "gains": args.gains,
           "problems": problems, "paper_table2": {p: {str(k): v for k, v in d.items()}
                                                  for p, d in M.PAPER_TABLE2.items()}}
    res["table2"] = None if args.no_table2 else table2(renderer.model, pieces, args.starts, args.seed)
    res["seconds_table2"] = round(time.time() - t0, 1)
    if not args.no_whole:
        print("whole pieces", file=sys.stderr)
        works = score_versions(usable)
        res["whole_piece"] = whole_pieces(renderer, works, args.data, cache, args.seeds, args.seed,
                                          temperature=args.temperature, plots=args.plots,
                                          z_temperature=args.z_temperature, gains=args.gains)
    res["targets"] = M.targets(res["table2"], res.get("whole_piece"))
    res["seconds"] = round(time.time() - t0, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(M.no_nan(res), indent=1, allow_nan=False))
    print(M.format_report(res))
    print(f"({res['seconds']:.0f} s; JSON in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
