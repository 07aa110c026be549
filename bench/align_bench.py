"""Automatic alignment of real performance MIDI files against the corpus' match files.

    python bench/align_bench.py [--data ../shared/data] [--limit N] [--json OUT]

For every row of ``split.csv`` with a ``perf_midi`` and a score file (38 of the 40 in
../shared/data), aligns the MIDI to
its score with ``render.align.align_midi`` (what the web app does with an uploaded reference)
and compares the result with the match file's alignment: the share of the match file's matched
notes that the automatic alignment maps to the same performed onset (within 20 ms), the matched,
missing and extra counts, and the seconds it took. Prints one line per file and the summary.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ONSET_TOL_SEC = 0.02


def check_one(row: dict, data: Path, tmp: Path) -> dict:
    from render.align import align_midi
    from render.dataset import unpack
    from render.loaders import load_score
    from render.performance import load_aligned

    score = load_score(unpack(data / row["score_file"], tmp, row["score_file"]))
    truth = load_aligned(unpack(data / row["match_file"], tmp, row["match_file"]))
    t_true = {str(truth.score.notes["id"][i]): truth.notes["onset_sec"][truth.match_index[i]]
              for i in np.flatnonzero(truth.matched)}
    t0 = time.perf_counter()
    aligned, report = align_midi(score, data / row["perf_midi"])
    seconds = time.perf_counter() - t0
    m = np.flatnonzero(aligned.matched)
    got = aligned.notes["onset_sec"][aligned.match_index[m]]
    ids = score.notes["id"][m].astype(str)
    agree = sum(abs(t_true.get(i, -9.0) - t) < ONSET_TOL_SEC for i, t in zip(ids, got))
    return {"work": row["work"], "perf_midi": row["perf_midi"], "score_notes": len(score.notes),
            "truth_matched": len(t_true), "agree": agree / max(len(t_true), 1),
            "n_matched": report.n_matched, "n_missing": report.n_missing,
            "n_extra": report.n_extra, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/align_bench.py", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--limit", type=int, default=0, help="at most this many files (0 = all)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    split = args.data / "split.csv"
    if not split.is_file():
        print(f"error: {split}: no such file", file=sys.stderr)
        return 2
    rows = [r for r in csv.DictReader(open(split)) if r.get("perf_midi")]
    no_score = [r for r in rows if r.get("score_file_present", "True") != "True"]
    if no_score:
        print(f"{len(no_score)} of {len(rows)} files left out: their score file is not in the corpus")
    rows = [r for r in rows if r not in no_score]
    if args.limit:
        rows = rows[: args.limit]
    warnings.simplefilter("ignore")
    results = []
    with tempfile.TemporaryDirectory(prefix="align-bench-") as tmp:
        for k, r in enumerate(rows, 1):
            try:
                res = check_one(r, args.data, Path(tmp))
            except Exception as exc:  # a failure is a result too: counted and shown
                res = {"work": r["work"], "perf_midi": r["perf_midi"], "error": f"{type(exc).__name__}: {exc}"}
            results.append(res)
            if "error" in res:
                print(f"[{k:2d}/{len(rows)}] {res['work']:40s} FAILED {res['error'][:120]}", flush=True)
            else:
                print(f"[{k:2d}/{len(rows)}] {res['work']:40s} agree {100 * res['agree']:5.1f} %  "
                      f"matched {res['n_matched']:5d} missing {res['n_missing']:4d} extra "
                      f"{res['n_extra']:4d}  {res['seconds']:5.1f} s", flush=True)
    ok = [r for r in results if "error" not in r]
    agree = np.array([r["agree"] for r in ok])
    secs = np.array([r["seconds"] for r in ok])
    summary = {"files": len(results), "failed": len(results) - len(ok),
               "agree_median": float(np.median(agree)) if len(ok) else None,
               "agree_mean": float(agree.mean()) if len(ok) else None,
               "over_97": int((agree > 0.97).sum()),
               "agree_min": float(agree.min()) if len(ok) else None,
               "agree_max": float(agree.max()) if len(ok) else None,
               "seconds_median": float(np.median(secs)) if len(ok) else None,
               "seconds_max": float(secs.max()) if len(ok) else None}
    if not ok:
        print(f"\n{summary['files']} files, all failed", file=sys.stderr)
        return 1
    print(f"\n{summary['files']} files, {summary['failed']} failed; agreement with the match files "
          f"(onsets within {1000 * ONSET_TOL_SEC:.0f} ms): median {100 * summary['agree_median']:.1f} %, "
          f"mean {100 * summary['agree_mean']:.1f} %, {summary['over_97']} over 97 %, "
          f"min {100 * summary['agree_min']:.1f} %, max {100 * summary['agree_max']:.1f} %; "
          f"{summary['seconds_median']:.1f} s median per file (max {summary['seconds_max']:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
