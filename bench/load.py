"""Load test: many listeners on one job, several users rendering at once, uploads meanwhile.

Against a running app (``--base-url``) or, by default, a private one started here the way the
integration tests start it (a private Redis, SQLite, Daphne and one Celery worker, solo pool;
the model of MODEL_CHECKPOINT, else the shipped checkpoint). At once:

- one job streamed to ``--listeners`` WebSocket clients (its owner's cookies, as open tabs);
- ``--users`` signed-up users each rendering a score of their own and following it;
- ``--uploads`` uploads by those users while the renders run.

Prints the queue waits (Render POST -> 'running'), first-chunk and done times (from the POST),
upload times, the notes lost, repeated or out of order over every stream, and the errors
(HTTP errors, failed jobs, broken sockets, and with a private app ERROR lines and tracebacks in
its logs). Exit code 1 unless notes lost, out of order and errors are all 0.

Usage: ``python bench/load.py [--base-url URL] [--listeners 50] [--users 8] [--uploads 8]
[--notes 300] [--workers 1] [--batch-max N] [--compare] [--json OUT]``. The defaults run in about
two minutes on two loaded cores. ``--compare`` first runs the same load on a private app whose
worker renders one job at a time (RENDER_BATCH_MAX=1, no cross-job batching) and prints the
ratios of the last first chunk and of the renders' aggregate notes/s.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.services import RedisServer, free_port  # noqa: E402
from tests.integration.stack import Client, Stack  # noqa: E402

LOG_ERRORS = re.compile(r"\bERROR\b|\bCRITICAL\b|Traceback")


def check_stream(msgs: list[dict], end: dict, n_total: int) -> dict:
    """Lost, repeated and out-of-order notes of one stream, and how it ended."""
    seqs = [m["seq"] for m in msgs if m["type"] == "notes"]
    keys = [(n.get("v", 0), n["i"]) for m in msgs if m["type"] == "notes" for n in m["notes"]]
    out_of_order = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1) + (seqs[:1] not in ([], [0]))
    return {"lost": max(0, n_total - len(set(keys))), "repeated": len(keys) - len(set(keys)),
            "out_of_order": out_of_order, "done": end["type"] == "done",
            "end": end.get("state") or end["type"], "message": end.get("message")}


def follow(client: Client, job_id: str, t0: float, timeout: float) -> dict:
    """Every message of a job's stream until it ends, with times from t0 (seconds).

    The stream ends with 'done', or with a failed or cancelled state followed (possibly after
    the stored chunks not yet relayed) by the server's close.
    """
    from websockets.exceptions import ConnectionClosedOK

    msgs, running, first, ended = [], None, None, None
    with client.socket(job_id) as ws:
        while True:
            try:
                m = ws.recv(timeout=max(1.0, t0 + timeout - time.perf_counter()))
            except ConnectionClosedOK:
                if ended is None:
                    raise
                break
            msgs.append(m)
            now = time.perf_counter() - t0
            if m["type"] == "state" and m["state"] == "running" and running is None:
                running = now
            if m["type"] == "notes" and first is None:
                first = now
                running = running if running is not None else now  # started before we joined
            if m["type"] == "state" and m["state"] in ("failed", "cancelled"):
                ended = m
            if m["type"] == "done":
                ended = m
                break
    return {"msgs": msgs, "end": ended, "queue_wait_s": running, "first_chunk_s": first,
            "done_s": time.perf_counter() - t0}


class Recorder:
    """Thread-safe error list."""

    def __init__(self):
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def add(self, what: str) -> None:
        with self.lock:
            self.errors.append(what[:300])


def run_load(base_url: str, args, score: Path, upload_score: Path) -> dict:
    site = SimpleNamespace(base_url=base_url.rstrip("/"))
    rec = Recorder()
    users = [Client(site).signup(f"load{uuid.uuid4().hex[:8]}") for _ in range(args.users + 1)]
    host, renderers = users[0], users[1:]
    scores = [u.upload_ok(score) for u in users]
    listeners: list[dict] = [None] * args.listeners  # type: ignore[list-item]
    renders: list[dict] = [None] * len(renderers)  # type: ignore[list-item]
    uploads: list[float] = []

    def listen(k: int, job_id: str, t0: float) -> None:
        try:
            listeners[k] = follow(host, job_id, t0, args.timeout)
        except Exception as exc:  # noqa: BLE001 - a broken listener is an error to count
            rec.add(f"listener {k}: {type(exc).__name__}: {exc}")

    def render(k: int) -> None:
        try:
            t0 = time.perf_counter()
            r = renderers[k].render(scores[k + 1], seed=k)
            if r.status_code != 201:
                rec.add(f"render {k}: HTTP {r.status_code} {r.text[:200]}")
                return
            job = r.json()
            got = follow(renderers[k], job["job_id"], t0, args.timeout)
            status = renderers[k].get(f"/api/v1/jobs/{job['job_id']}/").json()
            renders[k] = dict(got, n_total=status["n_notes_total"])
        except Exception as exc:  # noqa: BLE001
            rec.add(f"render {k}: {type(exc).__name__}: {exc}")

    def upload(k: int) -> None:
        try:
            t0 = time.perf_counter()
            r = renderers[k % len(renderers)].upload(upload_score, name=f"upload{k}.mid")
            if r.status_code != 302:
                rec.add(f"upload {k}: HTTP {r.status_code} {r.text[:200]}")
                return
            with rec.lock:
                uploads.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001
            rec.add(f"upload {k}: {type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    r = host.render(scores[0], seed=12345)
    if r.status_code != 201:
        raise SystemExit(f"the broadcast render was refused: HTTP {r.status_code} {r.text[:300]}")
    shared = r.json()
    threads = [threading.Thread(target=listen, args=(k, shared["job_id"], t0))
               for k in range(args.listeners)]
    threads += [threading.Thread(target=render, args=(k,)) for k in range(len(renderers))]
    threads += [threading.Thread(target=upload, args=(k,)) for k in range(args.uploads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    n_shared = host.get(f"/api/v1/jobs/{shared['job_id']}/").json()["n_notes_total"]
    streams = ([dict(check_stream(x["msgs"], x["end"], n_shared), who="listener")
                for x in listeners if x] +
               [dict(check_stream(x["msgs"], x["end"], x["n_total"]), who="render") for x in renders if x])
    for s in streams:
        if not s["done"]:
            rec.add(f"{s['who']} stream ended {s['end']}: {s['message']}")
    return {"wall_s": wall, "listeners": [x for x in listeners if x],
            "renders": [x for x in renders if x], "uploads_s": uploads, "streams": streams,
            "errors": rec.errors, "n_listeners": args.listeners, "n_users": len(renderers),
            "n_uploads": args.uploads}


def _stats(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"median {statistics.median(xs):6.2f} s, max {max(xs):6.2f} s (n={len(xs)})"


def report(res: dict) -> tuple[dict, bool]:
    lis, ren = res["listeners"], res["renders"]
    lost = sum(s["lost"] for s in res["streams"])
    disorder = sum(s["out_of_order"] + s["repeated"] for s in res["streams"])
    figures = {
        "wall_s": res["wall_s"],
        "queue_wait_s": [r["queue_wait_s"] for r in ren],
        "first_chunk_s": [r["first_chunk_s"] for r in ren],
        "done_s": [r["done_s"] for r in ren],
        "listener_first_chunk_s": [x["first_chunk_s"] for x in lis],
        "listener_done_s": [x["done_s"] for x in lis],
        "uploads_s": res["uploads_s"], "lost_notes": lost, "out_of_order_or_repeated": disorder,
        "errors": res["errors"],
        # the users' renders together: their notes over the time from the POSTs to the last done
        "render_notes_per_s": (sum(r["n_total"] for r in ren) / max(r["done_s"] for r in ren)) if ren else 0.0,
    }
    print(f"load: {res['n_listeners']} listeners on one job, {res['n_users']} users rendering, "
          f"{res['n_uploads']} uploads, all at once; wall {res['wall_s']:.1f} s")
    print(f"renders ({len(ren)}/{res['n_users']} followed to the end), from the Render POST:")
    print(f"  queue wait (-> running): {_stats(figures['queue_wait_s'])}")
    print(f"  first chunk:             {_stats(figures['first_chunk_s'])}")
    print(f"  done:                    {_stats(figures['done_s'])}")
    print(f"  aggregate:               {figures['render_notes_per_s']:.0f} notes/s (all takes' notes "
          "over the time to the last done)")
    print(f"listeners ({len(lis)}/{res['n_listeners']} followed to the end), from the POST:")
    print(f"  first chunk:             {_stats(figures['listener_first_chunk_s'])}")
    print(f"  done:                    {_stats(figures['listener_done_s'])}")
    print(f"uploads ({len(res['uploads_s'])}/{res['n_uploads']} accepted): "
          f"{_stats(res['uploads_s'])}")
    print(f"streams checked: {len(res['streams'])}; notes lost: {lost}; "
          f"chunks out of order or notes repeated: {disorder}")
    print(f"errors: {len(res['errors'])}")
    for e in res["errors"][:20]:
        print(f"  - {e}")
    return figures, lost == 0 and disorder == 0 and not res["errors"]


def _model_checkpoint(tmp: Path) -> str:
    if os.environ.get("MODEL_CHECKPOINT"):
        return os.environ["MODEL_CHECKPOINT"]
    from ml.inference import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        raise SystemExit(f"no model: set MODEL_CHECKPOINT ({DEFAULT_CHECKPOINT} is absent)")
    return str(DEFAULT_CHECKPOINT)


def run_private(args, tmp: Path, score: Path, upload_score: Path, *, env: dict, workers: int) -> dict:
    """The load against a private app (SQLite, ``workers`` Celery workers, ``env`` on top)."""
    redis = RedisServer(tmp / "redis").start()
    stack = Stack(tmp / "stack", db="sqlite", redis_url=redis.url, port=free_port(),
                  env={"MODEL_CHECKPOINT": _model_checkpoint(tmp), "LOG_LEVEL": "INFO", **env})
    try:
        t_start = time.perf_counter()
        stack.start(timeout_s=args.start_timeout)
        for k in range(1, workers):
            stack.add_worker(f"load-{k}", timeout_s=args.start_timeout)
        print(flush=True)
        print(f"private app started in {time.perf_counter() - t_start:.1f} s "
              f"({stack.base_url}, SQLite, {workers} worker(s), {env or 'defaults'})")
        res = run_load(stack.base_url, args, score, upload_score)
        for log in [stack.workdir / "daphne.log", *stack.workdir.glob("worker*.log")]:
            for line in log.read_text(errors="replace").splitlines():
                if LOG_ERRORS.search(line):
                    res["errors"].append(f"{log.name}: {line[:250]}")
    finally:
        stack.stop()
        redis.stop()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", help="a running app (default: start a private one)")
    ap.add_argument("--listeners", type=int, default=50)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--uploads", type=int, default=8)
    ap.add_argument("--notes", type=int, default=300, help="notes of the rendered scores (MIDI)")
    ap.add_argument("--upload-notes", type=int, default=200, help="notes of the uploaded score")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a stream may take")
    ap.add_argument("--start-timeout", type=float, default=600,
                    help="seconds the private app's worker and Daphne may take to start")
    ap.add_argument("--workers", type=int, default=1, help="Celery workers of the private app")
    ap.add_argument("--batch-max", type=int, help="RENDER_BATCH_MAX of the private app (1: one job "
                    "at a time per worker)")
    ap.add_argument("--compare", action="store_true", help="first run the same load on one worker "
                    "rendering one job at a time (RENDER_BATCH_MAX=1) and print the ratios")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the private app on kill too
    from tests.data.corpus import _many_notes_midi

    with tempfile.TemporaryDirectory(prefix="load-") as tmp_s:
        tmp = Path(tmp_s)
        score, upload_score = tmp / "score.mid", tmp / "upload.mid"
        score.write_bytes(_many_notes_midi(args.notes))
        upload_score.write_bytes(_many_notes_midi(args.upload_notes))
        if args.base_url:
            figures, ok = report(run_load(args.base_url, args, score, upload_score))
        else:
            base = None
            if args.compare:
                print("== baseline: one worker, one job at a time (RENDER_BATCH_MAX=1)")
                base, base_ok = report(run_private(args, tmp / "base", score, upload_score,
                                                   env={"RENDER_BATCH_MAX": "1"}, workers=1))
            env = {} if args.batch_max is None else {"RENDER_BATCH_MAX": str(args.batch_max)}
            if args.compare:
                print(f"== this configuration: {args.workers} worker(s), {env or 'RENDER_BATCH_MAX default'}")
            figures, ok = report(run_private(args, tmp / "run", score, upload_score, env=env,
                                             workers=args.workers))
            if base is not None:
                ok = ok and base_ok
                figures["baseline"] = base
                last_b, last = max(base["first_chunk_s"]), max(figures["first_chunk_s"])
                print(f"ratios to the baseline: last first chunk {last:.2f} s vs {last_b:.2f} s "
                      f"({last / last_b:.2f}x); renders' aggregate {figures['render_notes_per_s']:.0f} "
                      f"vs {base['render_notes_per_s']:.0f} notes/s "
                      f"({figures['render_notes_per_s'] / base['render_notes_per_s']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
