"""Run the score loader over a sample of real-world files: read, refused or crashed, and how long.

    python bench/parse_sample.py DIR [DIR ...] [--max N] [--timeout 60] [--memory-mb 3000]
                                 [--ext krn,mxl,...] [--json OUT] [--quiet]

Every file (recursively, the extensions given; sorted, then every k-th so that at most ``--max``
files per folder are taken) is read by ``render.loaders.load_score`` in a child process under the
time limit (default 60 s, as the web app) and an address-space limit. Each ends as one of

- ``read``: a Score came back;
- ``refused``: a ``ScoreError`` with a one-line message that names no Python exception type and
  no server-side path;
- ``unclear``: a ``ScoreError`` whose message still reads like a raw exception
  (``KeyError: 'symbol'``, ``StopIteration``) or carries a temporary file name;
- ``crashed``: any other exception, a dead child, or the time limit.

Prints one line per file (outcome, seconds, notes or message) and the totals. With no folder it
samples music21's corpus and test files (MusicXML test suite, MEI, kern, MIDI) from the venv.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXTS = ("xml", "musicxml", "mxl", "mei", "krn", "mid", "midi")
# a message that reads like an exception, or names a path on the server
UNCLEAR = re.compile(r"\b\w*(Error|Exception)\b|StopIteration|Traceback|/tmp/|/var/|\bline \d+, in\b"
                     r"|object has no attribute|list index out of range|NoneType")


def default_dirs() -> list[Path]:
    import music21

    root = Path(music21.__file__).parent
    return [root / "corpus", root / "musicxml" / "lilypondTestSuite", root / "mei" / "test",
            root / "humdrum", root / "midi" / "testPrimitive"]


def sample(folder: Path, exts: tuple[str, ...], max_files: int) -> list[Path]:
    """Every k-th file of ``folder`` (sorted) with one of ``exts``, at most ``max_files``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.name.lower().rsplit(".", 1)[-1] in exts)
    if max_files and len(files) > max_files:
        step = len(files) / max_files
        files = [files[int(i * step)] for i in range(max_files)]
    return files


def _child(path: str, memory_mb: int, conn) -> None:
    import resource

    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from render.errors import ScoreError
    from render.loaders import load_score

    try:
        s = load_score(path)
        conn.send(("read", f"{s.n_notes} notes, {s.n_parts} part(s)"))
    except ScoreError as exc:
        conn.send(("refused", exc.reason))
    except BaseException as exc:  # noqa: BLE001 - what the bench is looking for
        conn.send(("crashed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"))


def run_one(path: Path, timeout: float, memory_mb: int) -> tuple[str, str, float]:
    """(outcome, detail, seconds) of loading one file in a child process."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    t0 = time.perf_counter()
    proc = ctx.Process(target=_child, args=(str(path), memory_mb, send), daemon=True)
    proc.start()
    send.close()
    got = recv.poll(timeout)
    outcome, detail = recv.recv() if got else ("crashed", f"over the time limit of {timeout:g} s")
    seconds = time.perf_counter() - t0
    if proc.is_alive():
        proc.join(1)
        if proc.is_alive():
            proc.kill()
    proc.join()
    if not got and proc.exitcode not in (None, 0, -9):
        detail = f"the child died (exit code {proc.exitcode})"
    if outcome == "refused" and UNCLEAR.search(detail):
        outcome = "unclear"
    return outcome, detail, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--max", type=int, default=0, help="at most this many files per folder")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--memory-mb", type=int, default=3000)
    ap.add_argument("--ext", default=",".join(EXTS))
    ap.add_argument("--json", type=Path, help="write the per-file results here")
    ap.add_argument("--quiet", action="store_true", help="print only what is not read")
    args = ap.parse_args(argv)
    import music21  # noqa: F401 - imported once here, the children fork with it
    import partitura  # noqa: F401

    import render.loaders  # noqa: F401
    import render.score  # noqa: F401

    exts = tuple(e.strip().lower() for e in args.ext.split(",") if e.strip())
    files = [f for d in (args.dirs or default_dirs()) for f in sample(d, exts, args.max)]
    counts, rows, times = Counter(), [], []
    for path in files:
        outcome, detail, sec = run_one(path, args.timeout, args.memory_mb)
        counts[outcome] += 1
        times.append(sec)
        rows.append({"file": str(path), "outcome": outcome, "detail": detail,
                     "seconds": round(sec, 3)})
        if not args.quiet or outcome != "read":
            print(f"{outcome:8s} {sec:6.2f}s  {path.name}: {detail}", flush=True)
    n = len(files)
    times.sort()
    print(f"\n{n} files: " + ", ".join(f"{counts[k]} {k}" for k in
                                        ("read", "refused", "unclear", "crashed")))
    if n:
        print(f"seconds per file: median {times[n // 2]:.2f}, max {times[-1]:.2f}, "
              f"total {sum(times):.0f}")
    if args.json:
        args.json.write_text(json.dumps({"counts": dict(counts), "files": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
