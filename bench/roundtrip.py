"""Encode-decode round trip of every human performance of a split, pooled over notes.

    python bench/roundtrip.py --data ../shared/data --split val [--jobs 2] [--json OUT] [--cache DIR]

Prints per-file and pooled onset error (ms) and velocity exact rate: decoding a human
performance's own encoding must give its notes back within the quantisation error; and for the
sustain pedal (render.pedal) the agreement of "down" sampled every 10 ms and the error of each
lift to the nearest decoded lift. Parsed match files are read from ``--cache``/aligned
(render.dataset's cache) where present.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from render.dataset import read_split, unpack  # noqa: E402


def one(args):
    data, rel, tmp, cache = args
    warnings.simplefilter("ignore")
    from render.dataset import perf_key
    from render.encoding import decode, encode_aligned, roundtrip_report
    from render.performance import load_aligned, load_aligned_npz
    npz = Path(cache) / "aligned" / f"{perf_key(rel)}.npz"
    perf = load_aligned_npz(npz) if npz.is_file() else load_aligned(unpack(Path(data) / rel, Path(tmp), rel))
    idx, enc, ref, g, start, report = encode_aligned(perf)
    notes = perf.score.notes[idx]
    played = perf.notes[perf.match_index[idx]]
    onset, _, _, _ = decode(notes["onset_beat"], ref, enc)
    err = np.abs(onset + start - played["onset_sec"]) * 1000
    pedal = {k: v for k, v in roundtrip_report(rel, perf).items() if k.startswith("pedal")}
    return rel, err, float(np.mean(enc["velocity"] == played["velocity"])), report.clip_rate, pedal


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--cache", type=Path, default=Path(".cache/dataset"))
    a = ap.parse_args(argv)
    rows = [r for r in read_split(a.data) if r["split"] == a.split]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as cache, Pool(a.jobs) as pool:
        results = pool.map(one, [(a.data, r["match_file"], cache, a.cache) for r in rows])
    errs = np.concatenate([r[1] for r in results])
    per_file = [{"file": r[0], "median_ms": float(np.median(r[1])), "p95_ms": float(np.percentile(r[1], 95)),
                 "velocity_exact": r[2], "clip_rate": r[3], **r[4]} for r in results]
    lifts = [f for f in per_file if "pedal_lift_err_median_ms" in f]
    summary = {"split": a.split, "performances": len(results), "notes": int(len(errs)),
               "onset_err_median_ms": float(np.median(errs)), "onset_err_p95_ms": float(np.percentile(errs, 95)),
               "onset_err_p99_ms": float(np.percentile(errs, 99)),
               "worst_file_p95_ms": max(f["p95_ms"] for f in per_file),
               "velocity_exact_rate": float(np.mean([f["velocity_exact"] for f in per_file])),
               "tempo_clip_rate": float(np.mean([f["clip_rate"]["tempo_log_50"] for f in per_file])),
               "pedal_down_agreement_mean": float(np.mean([f["pedal_down_agreement"] for f in per_file])),
               "pedal_down_fraction_mean": float(np.mean([f["pedal_down_fraction"] for f in per_file])),
               "pedal_lift_err_median_ms": float(np.median([f["pedal_lift_err_median_ms"] for f in lifts]))
               if lifts else None,
               "pedal_lift_err_p90_ms_median": float(np.median([f["pedal_lift_err_p90_ms"] for f in lifts]))
               if lifts else None,
               "seconds": round(time.time() - t0, 1)}
    print(json.dumps(summary, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "files": per_file}, indent=1))


if __name__ == "__main__":
    main()
