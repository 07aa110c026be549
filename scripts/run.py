"""Start the whole app on this machine: Redis (unless REDIS_URL), migrations, demos, Daphne, Celery.

Run through ``make run`` / ``scripts/run.sh``, which install everything first. Ctrl-C (or SIGTERM)
stops every process this command started; so does any of them exiting on its own.

Environment (all optional)
--------------------------
DJANGO_SETTINGS_MODULE : default ``config.settings.local``
DATABASE_URL : default SQLite at ``var/db.sqlite3`` (the settings' default)
REDIS_URL : an existing Redis; when unset a private one is started on loopback (REDIS_PORT,
    default 6390, or a free port if that one is taken), data in ``var/redis``
HOST, PORT : where Daphne listens, default 127.0.0.1:8000
TORCH_THREADS : intra-op threads of the Celery worker (OMP/MKL), default 2
MODEL_CHECKPOINT, DEVICE : passed through to the worker (ml.inference.Renderer.load)

Why not a Procfile run by honcho: honcho starts its processes together, while this command has a
sequence (Redis up, on a free port when REDIS_PORT is taken, then migrate and the demos, then the
web and the worker, Redis only when REDIS_URL is unset, a "ready" line once Daphne listens). With
honcho that sequence would move into run.sh, a Redis entry point and wait-for-Redis steps in the
Procfile, and only the stop-all loop below (about 40 lines) would go.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from scripts.services import RedisServer, port_is_free

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def say(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


def _has_command(name: str) -> bool:
    return any(ROOT.glob(f"*/management/commands/{name}.py")) or any(
        ROOT.glob(f"*/*/management/commands/{name}.py"))


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _stop(procs: dict[str, subprocess.Popen], timeout_s: float = 15.0) -> None:
    """SIGTERM each process group, wait, then SIGKILL whatever is left."""
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {timeout_s:.0f} s: killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    if not (ROOT / "manage.py").exists():
        say("the web app is not in this checkout yet: the environment is installed, nothing to start")
        return 0
    env = os.environ
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    threads = env.get("TORCH_THREADS", "2")
    host, port = env.get("HOST", "127.0.0.1"), int(env.get("PORT", "8000"))
    if not port_is_free(port, host):
        say(f"port {host}:{port} is in use: stop what runs there or set PORT")
        return 1
    (ROOT / "var").mkdir(exist_ok=True)

    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    with ExitStack() as stack:
        if "REDIS_URL" not in env:
            want = int(env.get("REDIS_PORT", "6390"))
            redis_port = want if port_is_free(want) else None
            redis = stack.enter_context(
                RedisServer(ROOT / "var" / "redis", port=redis_port, persist=True))
            if redis_port is None:
                say(f"port {want} is taken: Redis uses {redis.port} instead")
            env["REDIS_URL"] = redis.url
            say(f"Redis started at {redis.url} (log {redis.log_path.relative_to(ROOT)})")
        else:
            say(f"using Redis at {env['REDIS_URL']}")

        try:
            _manage("migrate", "--noinput")
        except subprocess.CalledProcessError as exc:
            say(f"manage.py migrate failed (exit {exc.returncode}): not starting the app")
            return 1
        if _has_command("load_demos"):
            try:
                _manage("load_demos")
            except subprocess.CalledProcessError as exc:
                say(f"WARNING: manage.py load_demos failed (exit {exc.returncode}): "
                    "starting without (some) demo scores")

        worker_env = dict(env, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        procs = {
            "daphne": subprocess.Popen(
                [str(BIN / "python"), "-m", "config.serve", "-b", host, "-p", str(port),
                 "config.asgi:application"],
                cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True),
            "celery": subprocess.Popen(
                [str(BIN / "celery"), "-A", "config", "worker", "-Q", "render,celery", "-P", "solo",
                 "-l", "info", "-n", "render@%h"],
                cwd=ROOT, env=worker_env, stdin=subprocess.DEVNULL, start_new_session=True),
        }
        stack.callback(_stop, procs)
        ready = False
        while not stopping:
            dead = [name for name, p in procs.items() if p.poll() is not None]
            if dead:
                say(f"{', '.join(dead)} exited (code {procs[dead[0]].returncode}): stopping")
                return 1
            if not ready and _listening(host, port):
                ready = True
                say(f"ready: open http://{host}:{port}/  (Ctrl-C stops everything)")
            time.sleep(0.2)
        say("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
