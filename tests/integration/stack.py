"""A live web stack for integration tests: database, Daphne and a Celery worker as processes.

Each `Stack` gets its own database (a SQLite file, or a fresh PostgreSQL database on the local
server or on a `PostgresCluster` of its own), its own MEDIA_ROOT and Redis database number, runs
``manage.py migrate``, then starts Daphne on a free port and a Celery worker (``-P solo -Q
render,celery``). Tests talk to it the way browsers do: HTTP (`Client`, with sessions and CSRF)
and WebSockets (`JobSocket`). Fault tests restart its processes (`Stack.restart_daphne`,
`Stack.kill_worker`, `PostgresCluster.restart`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import requests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class StackError(RuntimeError):
    pass


class Stack:
    """Database + Daphne + Celery worker with the test settings (see module docstring)."""

    def __init__(self, workdir: Path, *, db: str, redis_url: str, port: int, env: dict,
                 pg_admin_url: str = PG_ADMIN_URL):
        self.workdir, self.db, self.port = Path(workdir), db, port
        self.pg_admin_url = pg_admin_url
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.media = self.workdir / "media"
        self.pg_name = None
        if db == "sqlite":
            self.database_url = f"sqlite:///{self.workdir / 'db.sqlite3'}"
        elif db == "postgresql":
            self.pg_name = f"webapp_it_{uuid.uuid4().hex[:10]}"
            self.database_url = pg_admin_url.rsplit("/", 1)[0] + "/" + self.pg_name
        else:
            raise ValueError(db)
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test",
                        DATABASE_URL=self.database_url, REDIS_URL=redis_url,
                        MEDIA_ROOT=str(self.media), VAR_DIR=str(self.workdir),
                        PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **env)
        self.daphne = self.worker = None
        self.n_workers_started = 0
        self.extra: list[subprocess.Popen] = []  # more Daphne processes and workers (scale-out tests)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 120) -> Stack:
        """Migrate, start Daphne and the worker; ``timeout_s`` for each to be ready."""
        if self.pg_name:
            import psycopg

            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        self.manage("migrate", "--noinput")
        self._spawn_daphne()
        self.start_worker(timeout_s)
        self._wait_http(timeout_s)
        return self

    def _spawn_daphne(self, port: int | None = None) -> subprocess.Popen:
        name = "daphne.log" if port is None else f"daphne-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(port or self.port),
             "config.asgi:application"],
            cwd=REPO, env=self.env, stdout=open(self.workdir / name, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        if port is None:
            self.daphne = proc
        return proc

    def add_daphne(self, port: int, timeout_s: float = 90) -> Site:
        """Another Daphne process on ``port`` against the same database and Redis (as on a second
        web machine); stopped with the stack. Returns a `Site` for `Client`."""
        proc = self._spawn_daphne(port)
        self.extra.append(proc)
        site = Site(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"daphne exited: {(self.workdir / f'daphne-{port}.log').read_text()[-3000:]}")
            try:
                requests.get(site.base_url + "/", timeout=2)
                return site
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        raise StackError(f"daphne on port {port} did not answer")

    def add_worker(self, name: str, timeout_s: float = 120) -> Path:
        """Another Celery worker (its own node name, as on a second machine); stopped with the
        stack. Returns its log file."""
        first, log = self.worker, self.worker_log
        self.start_worker(timeout_s, name=name)
        self.extra.append(self.worker)
        path = self.worker_log
        self.worker, self.worker_log = first, log
        return path

    def restart_daphne(self, timeout_s: float = 90) -> None:
        """Stop Daphne (SIGTERM, as a deploy or a process manager does) and start it again on the
        same port; returns once it answers HTTP."""
        _terminate(self.daphne)
        self._spawn_daphne()
        self._wait_http(timeout_s)

    def start_worker(self, timeout_s: float = 120, name: str | None = None) -> None:
        """Start the Celery worker (node ``name``, default it-<db>) and wait until it is ready."""
        self.n_workers_started += 1
        path = self.workdir / f"worker{self.n_workers_started}.log"
        self.worker_log = path
        self.worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "config", "worker", "-P", "solo", "-Q", "render,celery",
             "-n", f"{name or 'it-' + self.db}@%h", "-l", "info", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=REPO, env=self.env, stdout=open(path, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise StackError(f"celery worker exited: {path.read_text()[-3000:]}")
            if re.search(r"\bready\.", path.read_text(errors="replace")):
                return
            time.sleep(0.2)
        raise StackError(f"celery worker not ready in {timeout_s} s: {path.read_text()[-3000:]}")

    @contextlib.contextmanager
    def worker_paused(self):
        """The worker frozen (SIGSTOP, then SIGCONT on exit), as a stalled machine would be:
        what is sent meanwhile waits in the queue. Pause it idle (it may hold SQLite's write
        lock mid-render, and the web process's writes would wait for it)."""
        os.killpg(self.worker.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.worker.pid, signal.SIGCONT)

    def kill_worker(self) -> None:
        """SIGKILL the worker (no clean-up of any kind, like a crash or an OOM kill)."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)

    def _wait_http(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.daphne.poll() is not None:
                log = (self.workdir / "daphne.log").read_text()
                raise StackError(f"daphne exited: {log[-3000:]}")
            try:
                requests.get(self.base_url + "/", timeout=2)
                return
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine: slow first page
                time.sleep(0.2)
        raise StackError("daphne did not answer")

    def stop(self) -> None:
        for proc in (self.worker, self.daphne, *self.extra):
            _terminate(proc)
        if self.pg_name:
            import psycopg

            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def manage(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed: {proc.stderr[-3000:]}")
        return proc.stdout

    # --- direct database reads (what no page shows) -----------------------------------------
    def sql(self, query: str, *params) -> list[tuple]:
        if self.db == "sqlite":
            with sqlite3.connect(self.workdir / "db.sqlite3", timeout=20) as conn:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def count(self, table: str) -> int:
        return self.sql(f"SELECT COUNT(*) FROM {table}")[0][0]

    def media_files(self) -> list[Path]:
        if not self.media.exists():
            return []
        return sorted(p for p in self.media.rglob("*") if p.is_file())


def _terminate(proc: subprocess.Popen | None, timeout_s: float = 15) -> None:
    """SIGTERM a process group started here, SIGKILL it if it has not exited after ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _pg_bin() -> Path:
    """Folder of PostgreSQL's server programs: env PG_BIN, else Debian's newest version."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise StackError("no PostgreSQL server programs (initdb, pg_ctl) under /usr/lib/postgresql: "
                         "install Debian's postgresql or set PG_BIN")
    return found[-1].parent


class PostgresCluster:
    """A throwaway PostgreSQL cluster of its own (initdb, pg_ctl) on a free loopback port.

    For tests that stop or restart the database server: the machine's shared server is never
    touched. Trust authentication, superuser ``postgres``, no fsync. As root, its programs run
    as the ``postgres`` user (the server refuses to run as root); the data folder is then made
    outside pytest's private temporary folder, which that user cannot enter.
    """

    def __init__(self, port: int | None = None):
        from scripts.services import free_port

        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="it-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.bin = _pg_bin()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise StackError(f"{program} {' '.join(args)} failed: {proc.stderr[-2000:]}\n{tail}")

    def start(self) -> PostgresCluster:
        """Make the cluster on first use, then start the server and wait until it accepts."""
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        return self

    def stop(self) -> None:
        """Stop the server (fast mode: open sessions are ended, as in a real restart)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Site:
    """One web process's address (a second Daphne of a `Stack`), for `Client`."""

    def __init__(self, base_url: str):
        self.base_url = base_url


class Client:
    """A browser-like HTTP client: cookies, CSRF token, JSON helpers."""

    def __init__(self, stack: Stack | Site):
        self.stack, self.s = stack, requests.Session()
        self.s.headers["Referer"] = stack.base_url + "/"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.stack.base_url + path

    @property
    def csrf(self) -> str:
        if "csrftoken" not in self.s.cookies:
            self.s.get(self.url("/accounts/login/"))
        return self.s.cookies["csrftoken"]

    def get(self, path: str, **kw) -> requests.Response:
        return self.s.get(self.url(path), timeout=60, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf, **kw.pop("headers", {})}
        return self.s.post(self.url(path), headers=headers, timeout=120, **kw)

    def signup(self, username: str, password: str = "a-Long-passw0rd!") -> Client:
        r = self.post("/accounts/signup/", data={"username": username, "password1": password,
                                                 "password2": password,
                                                 "csrfmiddlewaretoken": self.csrf})
        assert r.status_code == 200 and "sessionid" in self.s.cookies, r.text[:2000]
        return self

    def upload(self, path: Path, *, name: str | None = None, title: str = "") -> requests.Response:
        with open(path, "rb") as f:
            return self.post("/upload/", files={"file": (name or Path(path).name, f)},
                             data={"title": title, "csrfmiddlewaretoken": self.csrf},
                             allow_redirects=False)

    def upload_ok(self, path: Path, **kw) -> str:
        r = self.upload(path, **kw)
        assert r.status_code == 302, r.text[:3000]
        m = re.search(r"/scores/([0-9a-f-]{36})/", r.headers["Location"])
        return m.group(1)

    def render(self, score_id: str, seed: int | None = None, **body) -> requests.Response:
        """POST the score page's render request (the API's, with the session and its CSRF token)."""
        payload = dict(body)
        if seed is not None:
            payload["seed"] = seed
        return self.post(f"/api/v1/scores/{score_id}/render/", data=json.dumps(payload),
                         headers={"Content-Type": "application/json"})

    def socket(self, job_id: str, from_seq: int = 0) -> JobSocket:
        return JobSocket(self, job_id, from_seq)


class JobSocket:
    """A WebSocket on /ws/jobs/<id>/ with this client's cookies and the site's Origin."""

    def __init__(self, client: Client, job_id: str, from_seq: int = 0):
        self.client, self.job_id = client, job_id
        self.next_seq, self.reconnects = from_seq, 0
        self.ws = self._connect(from_seq)

    def _connect(self, from_seq: int):
        from websockets.sync.client import connect

        base = urlparse(self.client.stack.base_url)
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.s.cookies)
        return connect(f"ws://{base.netloc}/ws/jobs/{self.job_id}/?from={from_seq}",
                       origin=self.client.stack.base_url,
                       additional_headers={"Cookie": cookie} if cookie else None,
                       open_timeout=20).__enter__()

    def recv(self, timeout: float = 60) -> dict:
        return json.loads(self.ws.recv(timeout=timeout))

    def messages_until_end(self, timeout: float = 180, stop_after_notes: int | None = None):
        """Messages up to and including 'done' or a failed/cancelled state."""
        from websockets.exceptions import ConnectionClosedOK

        out, deadline, n_notes = [], time.monotonic() + timeout, 0
        while True:
            try:
                msg = self.recv(max(0.1, deadline - time.monotonic()))
            except ConnectionClosedOK:
                # The server closes (1000) only after its end message. websockets' sync client
                # loses the frames read with the close frame when its close reply fails (the
                # server dropped the TCP connection first, a loaded machine: "If
                # self.send_data raised an exception, then events are lost"), so pick the stream
                # up where it broke, as the page does on any close.
                if self.reconnects >= 3:
                    raise
                self.reconnects += 1
                self.ws = self._connect(self.next_seq)
                msg = self.recv(max(0.1, deadline - time.monotonic()))
                if msg["type"] != "state":  # every connection opens with the job's state
                    raise AssertionError(f"a reconnected socket began with {msg}") from None
                if msg["state"] not in ("failed", "cancelled"):
                    continue  # the stream goes on: replayed chunks from next_seq, then 'done'
            out.append(msg)
            if msg["type"] == "notes":
                self.next_seq = msg["seq"] + 1
                n_notes += 1
                if stop_after_notes is not None and n_notes >= stop_after_notes:
                    return out
            if msg["type"] == "done" or (msg["type"] == "state"
                                         and msg["state"] in ("failed", "cancelled")):
                return out

    def close(self) -> None:
        self.ws.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
