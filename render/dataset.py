"""Build the training cache: every performance of ../shared/data encoded, one .npz each.

    python -m render.dataset --data ../shared/data --out .cache/dataset [--jobs 2] [--limit N]

Reads ``split.csv``, unpacks the ``.xz`` files it needs into ``<out>/unpacked`` (once), and
writes ``<out>/<split>/<key>.npz`` per performance with:

- ``feat`` (M, F) int16 score features of the M played score notes (render.features);
- ``frame`` (M,) int32 their piano-roll frames; ``spans`` (N, 3) int32 the whole score's roll;
- ``target`` (M, 4) int16 velocity, duration_100, deviation_100, tempo_dev_bpm;
- ``onset_beat`` (M,) f8, ``written_bpm`` (M,) f4, ``score_id`` (M,) str;
- ``perf`` (M, 3) f8 the human onset_sec, duration_sec, velocity (for evaluation);
- ``meta`` a JSON string (work, split, corpus, paths, clip rates, tempo source).

Works already built are skipped. The written tempo is the score's metronome mark where it is
within 5 % of the performance's local reference tempo (notation programs write default marks that
no pianist follows); else that reference: the 8-beat running median of the performed tempo,
rounded to 10 bpm (`render.encoding.local_tempo_reference`). DESIGN section 4 asks for one median
per piece; with it 23.5 % of the training notes had clipped onset deviations (sections in
contrasting tempi, fast quarter-note tempi), with the local reference 10.7 %.
Written dynamics come from the MusicXML beside the match file, linked by note id.
"""
from __future__ import annotations

import argparse
import csv
import json
import lzma
import os
import sys
import time
import warnings
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from render.encoding import RANGES, encode, local_tempo_reference, median_tempo_rounded
from render.features import roll_notes, score_features

TARGET_NAMES = list(RANGES)


def unpack(src: Path, cache: Path, rel: str) -> Path:
    """Unpack ``src`` (.xz or plain) to ``cache/rel`` without the .xz suffix, once."""
    dst = cache / (rel[:-3] if rel.endswith(".xz") else rel)
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(dst.suffix + ".tmp")
        opener = lzma.open if str(src).endswith(".xz") else open
        with opener(src, "rb") as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.replace(tmp, dst)
    return dst


def perf_key(match_rel: str) -> str:
    """A file-name-safe key of a performance, from its match path."""
    stem = match_rel[:-3] if match_rel.endswith(".xz") else match_rel
    return stem.replace("/", "__").removesuffix(".match")


def _xml_markings(xml_path: Path) -> tuple[dict, dict]:
    """Written velocity and metronome-mark tempo per base note id of a MusicXML score."""
    import partitura as pt
    from render.score import score_from_partitura, _in_force

    score = score_from_partitura(pt.load_musicxml(str(xml_path)), fmt="musicxml", unfold=False)
    notes = score.notes
    marks = score.tempo_marks[np.char.find(score.tempo_marks["text"], "=") >= 0]
    metro = _in_force(notes["onset_beat"], marks, "bpm", np.nan)
    vel = dict(zip(notes["id"].tolist(), notes["velocity_written"].tolist()))
    tempo = dict(zip(notes["id"].tolist(), metro.tolist()))
    return vel, tempo


def build_performance(row: dict, data: Path, cache: Path, xml_info, *, tempo_window_beat: float = 8.0) -> dict:
    """Encode one performance; returns the arrays to save (see module docstring).

    ``tempo_window_beat`` is the window of the local reference tempo (beats): tempo arcs longer
    than it stay out of the tempo targets."""
    from render.performance import load_aligned

    match = unpack(data / row["match_file"], cache / "unpacked", row["match_file"])
    perf = load_aligned(match)
    notes = perf.score.notes.copy()
    base = perf.score.base_ids()
    metro = np.full(len(notes), np.nan)
    if xml_info is not None:
        vel, tempo = xml_info
        notes["velocity_written"] = [vel.get(b, 0) for b in base]
        metro = np.array([tempo.get(b, np.nan) for b in base], float)
    idx = np.flatnonzero(perf.matched)
    played = perf.notes[perf.match_index[idx]]
    median = median_tempo_rounded(notes["onset_beat"][idx], played["onset_sec"])
    local = local_tempo_reference(notes["onset_beat"][idx], played["onset_sec"], is_grace=notes["is_grace"][idx],
                                  window_beat=tempo_window_beat)
    m = metro[idx]
    trusted = np.isfinite(m) & (np.abs(m - local) <= 0.05 * local)
    written = np.where(trusted, m, local)
    enc, start, report = encode(notes["onset_beat"][idx], written, played["onset_sec"],
                                played["duration_sec"], played["velocity"], notes["is_grace"][idx])
    # Features see the whole score (inter-onset intervals, roll); the model sees played notes.
    w_all = np.interp(notes["onset_beat"], notes["onset_beat"][idx], written)
    w_all[idx] = written
    feat, frame = score_features(notes, w_all)
    meta = {k: row[k] for k in ("split", "corpus", "work", "composer", "match_file", "score_file", "robust")}
    meta.update(n_score_notes=int(len(notes)), n_notes=int(len(idx)), start_sec=start,
                median_tempo_bpm=median, metronome_used=float(trusted.mean()),
                metronome_present=float(np.isfinite(m).mean()), clip_rate=report.clip_rate,
                tempo_window_beat=tempo_window_beat)
    return dict(
        feat=feat[idx], frame=frame[idx], spans=roll_notes(notes),
        target=np.stack([enc[k] for k in TARGET_NAMES], axis=1).astype(np.int16),
        onset_beat=notes["onset_beat"][idx], written_bpm=written.astype(np.float32),
        score_id=notes["id"][idx],
        perf=np.stack([played["onset_sec"], played["duration_sec"], played["velocity"]], axis=1),
        meta=json.dumps(meta),
    )


def build_work(args) -> list[dict]:
    """Build every performance of one work (the MusicXML is parsed once per work)."""
    rows, data, cache, out, window = args
    warnings.simplefilter("ignore")
    results, xml_info = [], None
    todo = [r for r in rows if not (out / r["split"] / f"{perf_key(r['match_file'])}.npz").exists()]
    if not todo:
        return [{"key": perf_key(r["match_file"]), "status": "skipped"} for r in rows]
    xml_rel = rows[0]["score_file"]
    if xml_rel and rows[0].get("score_file_present", "True") == "True":
        try:
            xml_info = _xml_markings(unpack(data / xml_rel, cache / "unpacked", xml_rel))
        except Exception as exc:  # the match file still has every note; only markings are lost
            results.append({"key": xml_rel, "status": "warning", "error": f"score markings: {exc}"[:300]})
    for r in todo:
        key = perf_key(r["match_file"])
        t0 = time.time()
        try:
            arrays = build_performance(r, data, cache, xml_info, tempo_window_beat=window)
            dst = out / r["split"] / f"{key}.npz"
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp.npz")
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, dst)
            meta = json.loads(arrays["meta"])
            results.append({"key": key, "status": "built", "split": r["split"], "work": r["work"],
                            "n_notes": meta["n_notes"], "clip_rate": meta["clip_rate"],
                            "seconds": time.time() - t0})
        except Exception as exc:
            results.append({"key": key, "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]})
    return results


def read_split(data: Path) -> list[dict]:
    """Rows of ``split.csv``; a missing file raises FileNotFoundError with the path."""
    path = data / "split.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no split.csv (expected a folder laid out like ../shared/data)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarise(out: Path) -> dict:
    """Pieces, performances, notes and mean clip rates per split, from the built files."""
    summary = {}
    for split_dir in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "unpacked"):
        works, n_perf, n_notes, clip = set(), 0, 0, defaultdict(float)
        for f in split_dir.glob("*.npz"):
            with np.load(f) as z:
                meta = json.loads(str(z["meta"]))
            works.add(meta["work"])
            n_perf += 1
            n_notes += meta["n_notes"]
            for k, v in meta["clip_rate"].items():
                clip[k] += v * meta["n_notes"]
        summary[split_dir.name] = {"works": len(works), "performances": n_perf, "notes": n_notes,
                                   "clip_rate": {k: v / max(n_notes, 1) for k, v in clip.items()}}
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m render.dataset", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path(".cache/dataset"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=0, help="build at most this many works (0 = all)")
    ap.add_argument("--split", default="", help="only this split (train / val)")
    ap.add_argument("--per-work", type=int, default=0,
                    help="at most this many performances per work, robust alignments first (0 = all)")
    ap.add_argument("--tempo-window", type=float, default=8.0,
                    help="window of the local reference tempo, beats (default 8: two bars of 4/4)")
    args = ap.parse_args(argv)
    try:
        rows = read_split(args.data)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.split:
        rows = [r for r in rows if r["split"] == args.split]
    by_work = defaultdict(list)
    for r in rows:
        by_work[(r["corpus"], r["work"])].append(r)
    if args.per_work:
        for key, rs in by_work.items():
            by_work[key] = sorted(rs, key=lambda r: (r["robust"] == "0.0", r["match_file"]))[: args.per_work]
    works = sorted(by_work.values(), key=lambda rs: -len(rs))  # big works first: better packing
    if args.limit:
        works = works[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tasks = [(rs, args.data, args.out, args.out, args.tempo_window) for rs in works]
    failed, counts = [], defaultdict(int)
    with Pool(max(1, args.jobs)) as pool:
        for i, results in enumerate(pool.imap_unordered(build_work, tasks), 1):
            for r in results:
                counts[r["status"]] += 1
                if r["status"] in ("failed", "warning"):
                    failed.append(r)
            print(f"\r[{i}/{len(tasks)} works] built {counts['built']} skipped {counts['skipped']} "
                  f"failed {counts['failed']}  {time.time() - t0:.0f}s", end="", file=sys.stderr)
    print(file=sys.stderr)
    summary = {"seconds": round(time.time() - t0, 1), "splits": summarise(args.out),
               "counts": dict(counts), "problems": failed}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
