"""Build the training cache: every performance of ../shared/data encoded, one .npz each.

    python -m render.dataset --data ../shared/data --out .cache/dataset [--jobs 2] [--limit N]

Reads ``split.csv``, unpacks the ``.xz`` files it needs into ``<out>/unpacked`` (once), keeps
each parsed match file as ``<out>/aligned/<key>.npz`` and each work's MusicXML markings as
``<out>/markings/<work>.npz`` (partitura's parsing is most of the cost: a rebuild with another
encoding reuses both), and writes ``<out>/<split>/<key>.npz`` per performance with:

- ``feat`` (M, F) int16 score features of the M played score notes (render.features);
- ``frame`` (M,) int32 their piano-roll frames; ``spans`` (N, 3) int32 the whole score's roll;
- ``beat`` (M,) int32 their beat (row of ``beat_ctx``); ``beat_ctx`` (B, D) float16 the score's
  per-beat summary (`render.features.beat_context`), input of the model's non-causal context;
- ``target`` (M, 6) int16 in ENCODED_DTYPE order (velocity, duration_100, deviation_100,
  tempo_log_50, sustain, soft);
- ``onset_beat`` (M,) f8, ``reference_bpm`` (M,) f4 the reference tempo g * W, ``marked_bpm``
  (M,) f4 W, ``score_id`` (M,) str;
- ``perf`` (M, 3) f8 the human onset_sec, duration_sec, velocity; ``pedal`` the pedal events;
- ``meta`` a JSON string (work, split, corpus, paths, g, clip rates).

Model v2 (DESIGN 4.1): the reference tempo is W, the tempo marked in the score (metronome marks
and tempo words from the MusicXML, their ratios kept between sections; 100 bpm where the score
has none) times g, one scalar per performance (its median ratio to W). Nothing local from the
performance enters the features. Markings (dynamics, hairpins, slurs, articulations, fermatas,
section ends) come from the MusicXML beside the match file, linked by note id.
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

from render.encoding import ENCODED_DTYPE, encode_aligned, marked_tempo
from render.features import FEATURE_NAMES, beat_context, beat_index, roll_notes, score_features
from render.marks import MARK_DTYPE, marks_by_base_id

TARGET_NAMES = list(ENCODED_DTYPE.names)


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


def xml_markings(xml_path: Path, cache: Path | None = None) -> dict:
    """What the MusicXML says beyond the notes, per note id as written: ``ids`` (K,), ``velocity``
    (K,) written dynamics, ``tempo_bpm`` (K,) marked tempo (metronome marks and tempo words;
    NaN before the first), ``marks`` (K,) MARK_DTYPE. Kept in ``cache`` (.npz) when given."""
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            kept = {k: z[k] for k in z.files}
        if kept["marks"].dtype == MARK_DTYPE:  # else kept by an older MARK_DTYPE: read again
            return kept
    import partitura as pt
    from render.score import score_from_partitura

    score = score_from_partitura(pt.load_musicxml(str(xml_path)), fmt="musicxml", unfold=False)
    out = {"ids": score.notes["id"], "velocity": score.notes["velocity_written"],
           "tempo_bpm": score.notes["tempo_bpm"], "marks": score.marks}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez_compressed(tmp, **out)
        os.replace(tmp, cache)
    return out


def load_aligned_cached(match: Path, cache: Path):
    """The parsed match file, from ``cache`` (.npz) when there, else parsed and kept there."""
    from render.performance import load_aligned, load_aligned_npz, save_aligned_npz

    if cache.is_file():
        return load_aligned_npz(cache)
    perf = load_aligned(match)
    save_aligned_npz(perf, cache)
    return perf


def build_performance(row: dict, data: Path, cache: Path, xml_info: dict | None) -> dict:
    """Encode one performance; returns the arrays to save (see module docstring)."""
    key = perf_key(row["match_file"])
    match = cache / "unpacked" / (row["match_file"][:-3] if row["match_file"].endswith(".xz") else row["match_file"])
    aligned_npz = cache / "aligned" / f"{key}.npz"
    if not aligned_npz.is_file():
        match = unpack(data / row["match_file"], cache / "unpacked", row["match_file"])
    perf = load_aligned_cached(match, aligned_npz)
    notes = perf.score.notes
    marks = np.zeros(len(notes), MARK_DTYPE)
    metro = np.full(len(notes), np.nan)
    if xml_info is not None:
        table = {nid: i for i, nid in enumerate(xml_info["ids"].tolist())}
        j = np.array([table.get(b, -1) for b in perf.score.base_ids().tolist()])
        ok = j >= 0
        notes["velocity_written"] = np.where(ok, xml_info["velocity"][np.maximum(j, 0)], 0)
        metro = np.where(ok, xml_info["tempo_bpm"][np.maximum(j, 0)], np.nan)
        marks = marks_by_base_id(notes["id"], xml_info["ids"], xml_info["marks"])
    perf.score.marks = marks
    w_all = marked_tempo(metro)
    idx, enc, ref, g, start, report = encode_aligned(perf, marked_bpm=w_all)
    played = perf.notes[perf.match_index[idx]]
    # Features see the whole score (inter-onset intervals, roll, beats); the model sees played notes.
    feat, frame = score_features(notes, g * w_all, marks)
    meta = {k: row[k] for k in ("split", "corpus", "work", "composer", "match_file", "score_file", "robust")}
    meta.update(n_score_notes=int(len(notes)), n_notes=int(len(idx)), start_sec=start, tempo_ratio_g=g,
                metronome_present=float(np.isfinite(metro).mean()), clip_rate=report.clip_rate,
                markings=bool(xml_info is not None))
    return dict(
        feat=feat[idx], frame=frame[idx], spans=roll_notes(notes),
        beat=beat_index(notes["onset_beat"])[idx].astype(np.int32),
        beat_ctx=beat_context(notes, g * w_all, marks, feat[:, FEATURE_NAMES.index("harmony")]).astype(np.float16),
        target=np.stack([enc[k] for k in TARGET_NAMES], axis=1).astype(np.int16),
        onset_beat=notes["onset_beat"][idx], reference_bpm=ref.astype(np.float32),
        marked_bpm=w_all[idx].astype(np.float32), score_id=notes["id"][idx],
        perf=np.stack([played["onset_sec"], played["duration_sec"], played["velocity"]], axis=1),
        pedal=perf.pedal, meta=json.dumps(meta),
    )


def build_work(args) -> list[dict]:
    """Build every performance of one work (the MusicXML is parsed once per work)."""
    rows, data, cache, out = args
    warnings.simplefilter("ignore")
    results, xml_info = [], None
    todo = [r for r in rows if not (out / r["split"] / f"{perf_key(r['match_file'])}.npz").exists()]
    if not todo:
        return [{"key": perf_key(r["match_file"]), "status": "skipped"} for r in rows]
    xml_rel = rows[0]["score_file"]
    if xml_rel and rows[0].get("score_file_present", "True") == "True":
        try:
            mk = cache / "markings" / (xml_rel.replace("/", "__").removesuffix(".xz") + ".npz")
            src = unpack(data / xml_rel, cache / "unpacked", xml_rel)
            xml_info = xml_markings(src, mk)
        except Exception as exc:  # the match file still has every note; only markings are lost
            results.append({"key": xml_rel, "status": "warning", "error": f"score markings: {exc}"[:300]})
    for r in todo:
        key = perf_key(r["match_file"])
        t0 = time.time()
        try:
            arrays = build_performance(r, data, cache, xml_info)
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
    caches = ("unpacked", "aligned", "markings")
    for split_dir in sorted(p for p in out.iterdir() if p.is_dir() and p.name not in caches):
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
    tasks = [(rs, args.data, args.out, args.out) for rs in works]
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
