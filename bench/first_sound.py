"""Browser benchmark: click -> first sound, on the first render after the app starts and after.

Starts a private app like bench/web_bench.py (Redis, SQLite, Daphne, one Celery worker with the
model of MODEL_CHECKPOINT, or random weights of the real architecture with --random-model),
uploads a score, opens its page in headless Chromium (Debian's, never downloaded) and presses
Render: the player's probe (`window.__player.firstSoundMs`) gives the time from the click to the
first note sounding (the first note's scheduled start, when playback begins), and ``doneMs`` the
end of the job. The first render after the app started is "cold"; ``--runs`` more follow.

Usage: ``python bench/first_sound.py [--score PATH] [--runs 5] [--random-model] [--json OUT]``.
Prints figures against the target (<= 500 ms); a benchmark, not a test: it fails only when a
render does not complete.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.services import RedisServer, free_port  # noqa: E402
from tests.integration.stack import Client, Stack  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
TARGET_MS = 500


def _render(page) -> dict:
    before = page.evaluate("__player.jobId") or ""
    page.click(".pr-render")
    page.wait_for_function("([before]) => __player.error || (__player.jobId && __player.jobId !== before"
                           " && !__player.streaming && __player.firstSoundMs !== null)",
                           arg=[before], timeout=300_000)
    err = page.evaluate("__player.error")
    if err:
        raise RuntimeError(f"the render failed: {err}")
    return page.evaluate("({first: __player.firstSoundMs, done: __player.doneMs, n: __player.notesReceived, "
                         "timeline: __player.timeline})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score", type=Path, help="score file (default: Maple Leaf Rag from music21's corpus)")
    ap.add_argument("--runs", type=int, default=5, help="renders after the cold one")
    ap.add_argument("--random-model", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="first-sound-") as tmp_s:
        tmp = Path(tmp_s)
        ckpt = os.environ.get("MODEL_CHECKPOINT", "")
        if args.random_model or not ckpt:
            if not args.random_model:
                print("MODEL_CHECKPOINT is not set: give it, or pass --random-model", file=sys.stderr)
                return 2
            import torch

            from ml.model import CVRNN, ModelConfig, save_checkpoint
            torch.manual_seed(0)
            ckpt = str(tmp / "random.pt")
            save_checkpoint(ckpt, CVRNN(ModelConfig()))
        if args.score is None:
            import music21
            args.score = Path(music21.__file__).parent / "corpus" / "joplin" / "maple_leaf_rag.mxl"
        redis = RedisServer(tmp / "redis").start()
        stack = Stack(tmp / "stack", db="sqlite", redis_url=redis.url, port=free_port(),
                      env={"MODEL_CHECKPOINT": ckpt, "RENDER_MAX_CONCURRENT_PER_USER": "1000",
                           "UPLOAD_PARSE_TIMEOUT_S": "300"})
        t_start = time.perf_counter()
        try:
            stack.start()
            started_s = time.perf_counter() - t_start
            client = Client(stack).signup(f"fs{uuid.uuid4().hex[:8]}")
            score_id = client.upload_ok(args.score)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                ctx = browser.new_context()
                ctx.add_cookies([{"name": c.name, "value": c.value, "url": stack.base_url} for c in client.s.cookies])
                page = ctx.new_page()
                page.goto(f"{stack.base_url}/scores/{score_id}/")
                page.wait_for_function("window.__player && (__player.scoreReady || __player.error)", timeout=120_000)
                page.wait_for_function("__player.samplesLoaded >= 30", timeout=120_000)
                cold = _render(page)
                warm = []
                for _ in range(args.runs):
                    warm.append(_render(page))
                browser.close()
        finally:
            stack.stop()
            redis.stop()
    firsts = [w["first"] for w in warm]
    figures = {"score": str(args.score), "n_notes": cold["n"], "app_start_s": started_s,
               "cold_first_sound_ms": cold["first"], "cold_done_ms": cold["done"],
               "warm_first_sound_ms_median": statistics.median(firsts) if firsts else None,
               "warm_first_sound_ms_max": max(firsts) if firsts else None,
               "warm_done_ms_median": statistics.median(w["done"] for w in warm) if warm else None}
    print(f"score: {Path(args.score).name}, {cold['n']} notes; app started in {started_s:.1f} s "
          f"(headless Chromium, one worker, SQLite)")
    print(f"click -> first sound, first render after the app started: {cold['first']:.0f} ms "
          f"(target <= {TARGET_MS} ms); job done after {cold['done']:.0f} ms")
    if firsts:
        print(f"click -> first sound, {len(firsts)} renders after: "
              f"median {figures['warm_first_sound_ms_median']:.0f} ms, "
              f"max {figures['warm_first_sound_ms_max']:.0f} ms (target <= {TARGET_MS} ms); done median "
              f"{figures['warm_done_ms_median']:.0f} ms")
    steps = [k for k in ("posted", "queued", "running", "firstChunk", "firstSound") if k in cold["timeline"]]
    print("where the time goes (ms after the click; cold / median of the others): " + ", ".join(
        f"{k} {cold['timeline'][k]:.0f} / "
        + (f"{statistics.median(w['timeline'].get(k, float('nan')) for w in warm):.0f}" if warm else "-")
        for k in steps))
    figures["timeline_cold_ms"] = cold["timeline"]
    figures["timelines_warm_ms"] = [w["timeline"] for w in warm]
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
