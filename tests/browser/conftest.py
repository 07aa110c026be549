"""Browser-suite fixtures: Debian's headless Chromium driven by Playwright (sync API).

Fixtures
--------
browser : playwright Browser
    One headless Chromium per session (``/usr/bin/chromium`` or env ``CHROMIUM``), audio allowed
    without a user gesture. Fails loudly when the executable is missing (never downloads one).
page : playwright Page
    A fresh context and page per test (1280x900); console errors and page errors are collected in
    ``page.errors`` (list of str).
screenshot : Callable[[Page, str], Path]
    Saves a full-page PNG to ``var/screenshots/<name>.png`` and returns its path.
live_app : tests.integration.stack.Stack
    The real app (SQLite, Daphne, a Celery worker, the session's private Redis), started once per
    session with the integration suite's ``Stack``; ``live_app.base_url`` is its address. The model
    is env MODEL_CHECKPOINT, else a random-weight checkpoint of the real architecture.
dev_site : str
    Base URL of the dev-only fixture site (tests/browser/devsite), which serves static/ and a page
    whose WebSocket is faked in the page itself; for testing the player without the Django app.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does)")
    if not (REPO / "static" / "vendor" / "piano" / "manifest.json").is_file():
        pytest.fail("static/vendor is empty: run `npm ci && python scripts/collect_assets.py`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    # The suites run on two processes on two cores (scripts/test.sh): a click may wait on a server
    # that shares the CPU with the other process's renders, so allow longer than Playwright's 30 s.
    pg.set_default_timeout(60_000)
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


@pytest.fixture
def screenshot() -> Callable[[object, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(pg, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=False)
        return path

    return take


@pytest.fixture(scope="session")
def dev_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.browser.devsite.server import DevSite

    with DevSite(tmp_path_factory.mktemp("devsite")) as site:
        yield site.url


@pytest.fixture(scope="session")
def browser_model_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.environ.get("MODEL_CHECKPOINT"):
        path = Path(os.environ["MODEL_CHECKPOINT"])
        assert path.is_file(), f"MODEL_CHECKPOINT={path} does not exist"
        return str(path)
    import torch

    from ml.model import CVRNN, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.pt"
    save_checkpoint(path, CVRNN(ModelConfig()))
    return str(path)


@pytest.fixture(scope="session")
def live_app(redis_server: str, browser_model_checkpoint: str, tmp_path_factory: pytest.TempPathFactory):
    from scripts.services import free_port
    from tests.integration.stack import Stack

    redis_url = redis_server.rsplit("/", 1)[0] + "/5"
    stack = Stack(tmp_path_factory.mktemp("browser-stack"), db="sqlite", redis_url=redis_url,
                  port=free_port(), env={"MODEL_CHECKPOINT": browser_model_checkpoint,
                                         "RENDER_MAX_CONCURRENT_PER_USER": "2", "LOG_LEVEL": "INFO"})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _worker_idle(request):
    """Start each live-app test with the solo worker idle: a test may end while its render still
    streams (A/B while streaming, cancel), and the next test's first render would queue behind it."""
    if "live_app" not in request.fixturenames:
        return
    stack = request.getfixturevalue("live_app")
    deadline = time.monotonic() + 180
    while stack.sql("SELECT count(*) FROM webapp_renderjob WHERE state IN ('queued', 'running')")[0][0]:
        assert time.monotonic() < deadline, "renders of earlier tests still running after 180 s"
        time.sleep(0.5)
