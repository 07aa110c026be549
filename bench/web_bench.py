"""Web benchmark: render latency, many listeners, throughput, against a live local stack.

Starts a private Redis, a SQLite database, Daphne and one Celery worker (solo pool) with the
model of MODEL_CHECKPOINT (or random weights of the real architecture with --random-model),
uploads a ~2,000-note score and measures, over HTTP and real WebSockets:

1. time from the Render POST to the first chunk of notes (what the player needs to start
   sounding) and to the end of the render, over ``--runs`` renders;
2. ``--listeners`` WebSocket clients on one job at once: each must get every chunk, in order;
3. renders per minute with one worker (``--throughput`` renders submitted at once, as that many
   users would; the worker renders them together in one batched pass per chunk), with the last
   first chunk; ``--compare`` also measures it with the worker rendering one job at a time
   (RENDER_BATCH_MAX=1, a second private app) and prints the ratios;
4. the model alone on the same score in this process (before the stack starts), the ratio of
   POST -> done to it, and the worker's own per-stage times of each job (its log's "timing" lines:
   score loading, preparation, model, conversion to NOTE dicts, chunk storage and sends, the wait
   for the last chunk, storing the take).

Usage: ``python bench/web_bench.py [--score PATH] [--runs 5] [--listeners 20] [--throughput 8]
[--compare] [--random-model] [--json OUT]``. Prints a table; exit code 1 if any chunk was dropped or
reordered.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.services import RedisServer, free_port  # noqa: E402
from tests.integration.stack import Client, Stack  # noqa: E402


def check_stream(msgs: list[dict], n_notes: int) -> tuple[bool, str]:
    """(ok, why): chunks numbered 0..k-1 in order, every score note exactly once, then done."""
    chunks = [m for m in msgs if m["type"] == "notes"]
    if [c["seq"] for c in chunks] != list(range(len(chunks))):
        return False, f"chunk order {[c['seq'] for c in chunks][:20]}..."
    idx = sorted(n["i"] for c in chunks for n in c["notes"])
    if idx != list(range(n_notes)):
        return False, f"{len(idx)} notes for {n_notes} score notes"
    if not msgs or msgs[-1]["type"] != "done":
        return False, f"ended with {msgs[-1] if msgs else None}"
    return True, ""


def _is_end(m: dict) -> bool:
    return m["type"] == "done" or (m["type"] == "state" and m["state"] in ("failed", "cancelled"))


def timed_render(client: Client, score_id: str, seed: int) -> dict:
    t0 = time.perf_counter()
    job = client.render(score_id, seed=seed).json()
    t_post = time.perf_counter() - t0
    msgs, first = _collect(client, job["job_id"], t0)
    return {"post_s": t_post, "first_chunk_s": first, "done_s": time.perf_counter() - t0,
            "msgs": msgs, "job_id": job["job_id"]}


def _collect(client: Client, job_id: str, t0: float) -> tuple[list[dict], float | None]:
    """Every message of a job's stream until its end, and seconds from t0 to the first notes."""
    msgs, first = [], None
    with client.socket(job_id) as ws:
        while True:
            m = ws.recv(timeout=600)
            msgs.append(m)
            if m["type"] == "notes" and first is None:
                first = time.perf_counter() - t0
            if _is_end(m):
                break
    return msgs, first


def listeners(client: Client, score_id: str, n: int, n_notes: int) -> dict:
    job = client.render(score_id, seed=12345).json()
    t0 = time.perf_counter()
    results: list[dict] = [None] * n  # type: ignore[list-item]

    def listen(k: int):
        msgs, first = [], None
        try:
            msgs, first = _collect(client, job["job_id"], t0)
            ok, why = check_stream(msgs, n_notes)
        except Exception as exc:  # a listener that broke counts as a failure
            ok, why = False, repr(exc)
        results[k] = {"ok": ok, "why": why, "first_chunk_s": first,
                      "done_s": time.perf_counter() - t0}

    threads = [threading.Thread(target=listen, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"n": n, "n_ok": sum(r["ok"] for r in results),
            "failures": [r["why"] for r in results if not r["ok"]],
            "first_chunk_s_max": max((r["first_chunk_s"] or float("nan")) for r in results),
            "done_s_max": max(r["done_s"] for r in results)}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stack_processes(stack: Stack) -> dict[str, int]:
    """Role -> pid of the stack's processes (its Redis, Daphne, each worker) and this client."""
    procs = {"redis": stack.redis_server.proc.pid, "daphne": stack.daphne.pid, "worker": stack.worker.pid,
             "benchmark client": os.getpid()}
    procs.update({f"worker {k + 2}": p.pid for k, p in enumerate(stack.extra)})
    return procs


def throughput(client: Client, score_id: str, k: int, n_notes: int, procs: dict[str, int] | None = None) -> dict:
    """k renders submitted at once (as k users would), each followed from its POST by its own
    listener: renders per minute, the last first chunk, every stream complete and in order; with
    ``procs`` (role -> pid), the CPU seconds each used meanwhile (where the 2 cores went)."""
    cpu0 = {r: cpu_seconds(p) for r, p in (procs or {}).items()}
    t0 = time.perf_counter()
    out: list[dict] = [None] * k  # type: ignore[list-item]

    def one(i: int):
        t = time.perf_counter()
        job = client.render(score_id, seed=1000 + i).json()
        msgs, first = _collect(client, job["job_id"], t)
        out[i] = {"first_chunk_s": first, "done_s": time.perf_counter() - t,
                  "ok": check_stream(msgs, n_notes)[0]}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = {r: cpu_seconds(p) - cpu0[r] for r, p in (procs or {}).items()}
    return {"renders": k, "elapsed_s": elapsed, "renders_per_min": 60 * k / elapsed, "cpu_s": cpu,
            "first_chunk_s_max": max(r["first_chunk_s"] for r in out),
            "done_s_max": max(r["done_s"] for r in out), "n_ok": sum(r["ok"] for r in out)}


def model_only(ckpt: str, score_path: Path, runs: int = 3) -> float:
    """Median seconds of one render of the score by the model alone, in this process (one torch
    thread, as the worker runs), chunks of the worker's size: the baseline of the pipeline."""
    import torch

    from ml.inference import Renderer
    from render.loaders import load_score

    torch.set_num_threads(1)
    score = load_score(score_path)
    renderer = Renderer.load(ckpt)
    times = []
    for seed in range(runs + 1):  # the first one warms up
        t0 = time.perf_counter()
        for _ in renderer.render(score, seed=seed, chunk_notes=64):
            pass
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def job_timings(worker_log: Path, job_ids: list[str]) -> dict:
    """Median seconds per stage over the jobs' "timing" lines in the worker's log
    (webapp.jobs.worker logs one per job)."""
    import re

    rows = []
    for line in worker_log.read_text(errors="replace").splitlines():
        m = re.search(r"job ([0-9a-f-]{36}) timing (\{.*\})", line)
        if m and m.group(1) in job_ids:
            rows.append(json.loads(m.group(2)))
    if not rows:
        return {}
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


@contextlib.contextmanager
def _stack(workdir: Path, ckpt: str, env: dict, workers: int = 1):
    """A private app (Redis, SQLite, Daphne, ``workers`` Celery workers) with ``env`` on top;
    stopped on exit."""
    redis = RedisServer(workdir / "redis").start()
    stack = Stack(workdir / "stack", db="sqlite", redis_url=redis.url, port=free_port(),
                  env={"MODEL_CHECKPOINT": ckpt, "RENDER_MAX_CONCURRENT_PER_USER": "1000",
                       "UPLOAD_PARSE_TIMEOUT_S": "300", **env})
    try:
        stack.start()
        stack.redis_server = redis
        for k in range(1, workers):
            stack.add_worker(f"bench-{k}")
        yield stack
    finally:
        stack.stop()
        redis.stop()


def default_score(tmp: Path) -> Path:
    from music21 import corpus

    return Path(str(corpus.getWork("joplin/maple_leaf_rag.mxl")))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score", type=Path, help="score file (default: Maple Leaf Rag, 2,312 notes "
                    "with its repeats)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--listeners", type=int, default=20)
    ap.add_argument("--throughput", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="Celery workers of the app (the throughput "
                    "part; --compare then also runs it with one worker)")
    ap.add_argument("--compare", action="store_true",
                    help="also run the throughput part with one job at a time per worker")
    ap.add_argument("--random-model", action="store_true",
                    help="random weights of the real architecture instead of MODEL_CHECKPOINT")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack on kill too

    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp_s:
        tmp = Path(tmp_s)
        ckpt = os.environ.get("MODEL_CHECKPOINT", "")
        if args.random_model or not ckpt:
            if not args.random_model:
                print("MODEL_CHECKPOINT is not set: give it, or pass --random-model",
                      file=sys.stderr)
                return 2
            import torch

            from ml.model import CVRNN, ModelConfig, save_checkpoint
            torch.manual_seed(0)
            ckpt = str(tmp / "random.pt")
            save_checkpoint(ckpt, CVRNN(ModelConfig()))
        score_path = args.score or default_score(tmp)
        base_s = model_only(ckpt, score_path)   # before the stack starts: nothing else running
        base_thr = one_thr = None
        if args.compare:  # the same renders at once, the worker taking one job at a time
            with _stack(tmp / "one-at-a-time", ckpt, {"RENDER_BATCH_MAX": "1"}) as stack:
                client = Client(stack).signup(f"bench{uuid.uuid4().hex[:6]}")
                score_id = client.upload_ok(score_path)
                n_notes = timed_render(client, score_id, seed=0)["msgs"][-1]["n_notes"]
                base_thr = throughput(client, score_id, args.throughput, n_notes)
            if args.workers > 1:  # one batching worker alone: the baseline of several
                with _stack(tmp / "one-worker", ckpt, {}) as stack:
                    client = Client(stack).signup(f"bench{uuid.uuid4().hex[:6]}")
                    score_id = client.upload_ok(score_path)
                    timed_render(client, score_id, seed=0)
                    one_thr = throughput(client, score_id, args.throughput, n_notes, stack_processes(stack))
        with _stack(tmp / "app", ckpt, {}, workers=args.workers) as stack:
            client = Client(stack).signup(f"bench{uuid.uuid4().hex[:6]}")
            score_id = client.upload_ok(score_path)
            warm = timed_render(client, score_id, seed=0)  # first render loads nothing: the
            n_notes = warm["msgs"][-1]["n_notes"]          # worker loaded the model at start
            runs = [timed_render(client, score_id, seed=s) for s in range(1, args.runs + 1)]
            bad = [check_stream(r["msgs"], n_notes) for r in runs + [warm]]
            lis = listeners(client, score_id, args.listeners, n_notes)
            thr = throughput(client, score_id, args.throughput, n_notes, stack_processes(stack))
            stages = job_timings(stack.worker_log, [r["job_id"] for r in runs])
    first = [r["first_chunk_s"] for r in runs]
    done = [r["done_s"] for r in runs]
    n_chunks = [sum(m["type"] == "notes" for m in r["msgs"]) for r in runs]
    figures = {
        "score": str(score_path), "n_notes": n_notes, "runs": args.runs,
        "first_chunk_s_median": statistics.median(first), "first_chunk_s_max": max(first),
        "done_s_median": statistics.median(done), "done_s_max": max(done),
        "chunks_per_render_median": statistics.median(n_chunks),
        "streams_ok": sum(ok for ok, _ in bad), "streams": len(bad),
        "listeners": lis, "throughput": thr, "throughput_one_job_at_a_time": base_thr,
        "workers": args.workers, "throughput_one_worker": one_thr,
        "model_only_s": base_s, "done_over_model_only": statistics.median(done) / base_s,
        "worker_stages_s_median": stages,
    }
    print(f"score: {score_path.name}, {n_notes} notes ({args.workers} worker(s), solo pool, SQLite)")
    print(f"POST -> first chunk: median {figures['first_chunk_s_median'] * 1000:.0f} ms, "
          f"max {figures['first_chunk_s_max'] * 1000:.0f} ms (target < 1000 ms)")
    print(f"POST answered:       median {statistics.median(r['post_s'] for r in runs) * 1000:.0f} ms "
          "(then the socket opens)")
    print(f"POST -> done:        median {figures['done_s_median']:.2f} s, "
          f"max {figures['done_s_max']:.2f} s")
    print(f"model alone (ml.inference in this process, 1 thread): {base_s:.2f} s; POST -> done / model alone "
          f"= {figures['done_over_model_only']:.2f} (target <= 1.3)")
    if stages:
        print("inside the worker, median per job: " + ", ".join(
            f"{k.removesuffix('_s')} {v * 1000:.0f} ms" for k, v in stages.items() if k.endswith("_s")))
    print(f"streams complete and in order: {figures['streams_ok']}/{figures['streams']}")
    print(f"{lis['n']} listeners on one job: {lis['n_ok']} complete and in order; first chunk "
          f"max {lis['first_chunk_s_max'] * 1000:.0f} ms, done max {lis['done_s_max']:.2f} s")
    print(f"throughput: {thr['renders']} renders submitted at once, done in {thr['elapsed_s']:.1f} s = "
          f"{thr['renders_per_min']:.1f} renders/min ({60 / base_s:.1f} for the model alone one after "
          f"another); last first chunk {thr['first_chunk_s_max']:.2f} s; {thr['n_ok']}/{thr['renders']} "
          "streams complete")
    for label, t in (("", thr), (" (one worker alone)", one_thr if args.workers > 1 else None)):
        if t and t.get("cpu_s"):
            total, cores = sum(t["cpu_s"].values()), os.cpu_count()
            print(f"  CPU during the throughput part{label}: " + ", ".join(
                f"{r} {v:.1f} s" for r, v in t["cpu_s"].items()) + f"; {total:.1f} s of the "
                f"{cores * t['elapsed_s']:.1f} core-seconds of {cores} cores over {t['elapsed_s']:.1f} s")
    if one_thr:
        ratio = thr["renders_per_min"] / one_thr["renders_per_min"]
        print(f"  {args.workers} workers vs one worker alone (both batching): {thr['renders_per_min']:.1f} vs "
              f"{one_thr['renders_per_min']:.1f} renders/min = {ratio:.2f}x")
    if base_thr:
        print(f"  one job at a time (RENDER_BATCH_MAX=1): {base_thr['renders_per_min']:.1f} renders/min, last "
              f"first chunk {base_thr['first_chunk_s_max']:.2f} s; ratios: renders/min "
              f"{thr['renders_per_min'] / base_thr['renders_per_min']:.2f}x, last first chunk "
              f"{thr['first_chunk_s_max'] / base_thr['first_chunk_s_max']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = figures["streams_ok"] == figures["streams"] and lis["n_ok"] == lis["n"] and thr["n_ok"] == thr["renders"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
