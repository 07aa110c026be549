"""What a user does, in headless Chromium against the real app (Daphne, Celery worker, Redis):
sign up, upload a score, see it engraved, render and hear it while it streams with the notes
highlighted, render another take, replay the first, download the MIDI. Screenshots go to
var/screenshots/app_*.png."""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

PASSWORD = "a-Long-passw0rd!"


@pytest.fixture(scope="module")
def score_file(tmp_path_factory) -> Path:
    """Joplin's Maple Leaf Rag (music21's corpus, public domain) as MEI engraved by Verovio."""
    import music21
    import verovio

    src = Path(music21.__file__).parent / "corpus" / "joplin" / "maple_leaf_rag.mxl"
    tk = verovio.toolkit()
    assert tk.loadFile(str(src))
    out = tmp_path_factory.mktemp("scores") / "maple_leaf_rag.mei"
    out.write_text(tk.getMEI())
    return out


def track_failures(page) -> list[str]:
    """Failed responses, and any request that leaves our server (no CDN: all served by us)."""
    bad: list[str] = []
    page.on("response", lambda r: bad.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("favicon.ico") else None)
    page.on("request", lambda r: bad.append(f"external {r.url}")
            if not r.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")) else None)
    return bad


def sign_up(page, base: str) -> str:
    name = f"u{uuid.uuid4().hex[:10]}"
    page.goto(base + "/accounts/signup/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("main form [type=submit]")
    page.wait_for_load_state()
    assert page.locator(".site-header").inner_text().find(name) >= 0, "signed up and logged in"
    return name


def upload(page, base: str, path: Path) -> str:
    page.goto(base + "/")
    page.set_input_files(".upload-form input[type=file]", str(path))
    page.click(".upload-form [type=submit]")
    page.wait_for_url(re.compile(r"/scores/[0-9a-f-]{36}/$"), timeout=120_000)
    return page.url


def wait_ready(page) -> None:
    page.wait_for_function("window.__player && (__player.scoreReady || __player.error)", timeout=90_000)
    assert page.evaluate("__player.error") is None, page.evaluate("__player.error")
    page.wait_for_function("__player.samplesLoaded >= 30", timeout=60_000)


def click_and_follow(page, selector: str = ".pr-render") -> None:
    """Click what starts a render and wait until that job has ended (or failed).

    Waits on the job id, not on ``streaming`` going up then down: a short piece can stream
    whole between two polls of the page (seen in CI), and ``streaming`` is never seen true."""
    before = page.evaluate("__player.jobId") or ""
    page.click(selector)
    page.wait_for_function("([before]) => __player.error || (__player.jobId && __player.jobId !== before"
                           " && !__player.streaming)", arg=[before], timeout=180_000)
    assert page.evaluate("__player.error") is None, page.evaluate("__player.error")


def render_take(page) -> dict:
    """Press Render and follow the take until the job is done; returns the chunk log and stats."""
    click_and_follow(page)
    return page.evaluate("""() => ({log: __player.chunkLog, received: __player.notesReceived,
        firstSoundMs: __player.firstSoundMs, doneMs: __player.doneMs, late: __player.notesLate,
        performanceId: __player.performanceId})""")


def test_upload_render_takes_replay_download(page, live_app, score_file, screenshot):
    base = live_app.base_url
    failures = track_failures(page)
    page.goto(base + "/")
    screenshot(page, "app_home")
    sign_up(page, base)
    score_url = upload(page, base, score_file)
    wait_ready(page)
    assert page.locator(".pr-score svg").count() >= 1
    notemap = page.evaluate("__player.player.notemap")
    assert len(notemap) > 1000
    screenshot(page, "app_score")

    # First take: playback starts while the job still streams; the clock advances between chunks.
    take1 = render_take(page)
    log = take1["log"]
    print(f"take 1: first sound {take1['firstSoundMs']:.0f} ms, done {take1['doneMs']:.0f} ms after the click, "
          f"{len(log)} chunks, {page.evaluate('__player.stalls')} stalls", page.evaluate('__player.timeline'))
    assert take1["received"] == sum(c["n"] for c in log) > 1000
    during = [c for c in log if c["state"] == "playing"]
    assert during, f"playback had not started before the last chunk arrived: {log[:3]} ... {log[-3:]}"
    assert during[-1]["pos"] > during[0]["pos"] or len(during) == 1 and during[0]["pos"] > 0, during
    assert take1["firstSoundMs"] is not None and take1["firstSoundMs"] < take1["doneMs"]
    assert take1["late"] == 0, (page.evaluate("__player.player.transport.lateLog"), log[:4])
    ids = [n["id"] for n in page.evaluate("__player.notes()")]
    second_pass = {i.rsplit("-", 1)[0] for i in ids if i.endswith("-2")}
    assert second_pass, "the Maple Leaf Rag's repeats are played as written (ids ending in -2)"
    assert len(second_pass & set(notemap)) >= 0.9 * len(second_pass), "repeated notes are highlighted too"
    page.wait_for_function("__player.highlighted > 0", timeout=10_000)
    a0, p0 = page.evaluate("[__player.audioTime(), __player.position()]")
    time.sleep(0.7)
    a1, p1 = page.evaluate("[__player.audioTime(), __player.position()]")
    assert a1 - a0 > 0.5 and p1 - p0 > 0.5
    assert page.evaluate("__player.peakLevel") > 0.01, "the piano is heard"

    lit = page.evaluate("__player.highlighted")
    assert page.locator(".pr-score g.pr-playing").count() >= 1 and lit >= 1
    tempo = page.locator(".pr-tempo").inner_text()
    assert re.fullmatch(r"♩ = \d+", tempo), tempo
    screenshot(page, "app_playing")

    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 1", timeout=10_000)
    first = page.locator(".pr-takes-list li").nth(0)
    assert first.get_attribute("data-performance-id") == take1["performanceId"]

    # Download the MIDI of the first take.
    with page.expect_download() as dl:
        first.locator("a.pr-dl-mid").click()
    midi = Path(dl.value.path()).read_bytes()
    assert midi[:4] == b"MThd" and len(midi) > 1000

    # Render another take: a new seed, a second row.
    page.click(".pr-play")  # pause the first take
    assert page.locator(".pr-render").inner_text() == "Render again"
    take2 = render_take(page)
    assert take2["performanceId"] != take1["performanceId"]
    print("take 2:", page.evaluate("__player.timeline"),
          [round(c["ms"] - take2["log"][0]["ms"]) for c in take2["log"]][:40])
    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 2", timeout=10_000)
    rows = [li.inner_text() for li in page.locator(".pr-takes-list li").all()]
    seeds = [re.search(r"seed (\d+)", r).group(1) for r in rows]
    assert seeds[0] != seeds[1], rows

    # Replay the first take without rendering again: its own notes, playing.
    n_jobs = live_app.count("webapp_renderjob")
    page.locator(".pr-takes-list li").nth(0).locator("button.pr-take-play").click()
    page.wait_for_function("__player.state === 'playing'", timeout=20_000)
    assert page.evaluate("__player.performanceId") == take1["performanceId"]
    assert page.evaluate("__player.notesReceived") == take1["received"]
    q0 = page.evaluate("__player.position()")
    time.sleep(0.6)
    assert page.evaluate("__player.position()") > q0 + 0.4
    page.wait_for_function("__player.highlighted > 0", timeout=10_000)
    assert live_app.count("webapp_renderjob") == n_jobs, "a replay renders nothing"
    screenshot(page, "app_replay")
    assert page.url == score_url
    assert not failures, failures
    assert not [e for e in page.errors if not e.startswith("Failed to load resource")], page.errors


@pytest.fixture(scope="module")
def demos(live_app) -> None:
    live_app.manage("load_demos")


def test_anonymous_visitor_plays_a_demo(page, live_app, demos, screenshot):
    failures = track_failures(page)
    page.goto(live_app.base_url + "/")
    links = page.locator("#demos a")
    assert links.count() >= 3, page.locator("#demos").inner_text()
    page.locator("#demos a", has_text="Chopin").first.click()
    page.wait_for_url(re.compile(r"/scores/[0-9a-f-]{36}/$"))
    wait_ready(page)
    take = render_take(page)
    assert take["received"] > 100 and take["late"] == 0
    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 1", timeout=10_000)
    page.wait_for_function("__player.state === 'playing' && __player.highlighted > 0", timeout=10_000)
    p0 = page.evaluate("__player.position()")
    time.sleep(0.5)
    assert page.evaluate("__player.position()") > p0 + 0.3
    screenshot(page, "app_demo_anonymous")
    assert not failures, failures


def start_long_render(page, live_app, tmp_path) -> None:
    """Sign up, upload an 8,000-note etude and render 4 takes of it, until the first notes: the
    decoder takes seconds, so what the test does next lands mid-render (a short piece was
    rendered whole between the first chunk and a click)."""
    from tests.data.corpus import _many_notes_midi

    long_score = tmp_path / "long_etude.mid"
    long_score.write_bytes(_many_notes_midi(8000))
    sign_up(page, live_app.base_url)
    upload(page, live_app.base_url, long_score)
    wait_ready(page)
    page.fill(".pr-variations", "4")
    page.click(".pr-render")
    page.wait_for_function("__player.notesReceived > 0", timeout=60_000)


def test_cancel_a_render(page, live_app, tmp_path, screenshot):
    failures = track_failures(page)
    start_long_render(page, live_app, tmp_path)
    assert page.locator(".pr-cancel").is_visible()
    page.click(".pr-cancel")
    page.wait_for_function("!__player.streaming", timeout=20_000)
    assert page.locator(".pr-status").inner_text() == "Cancelled"
    assert page.locator(".pr-cancel").is_hidden()
    page.wait_for_function("document.querySelector('.pr-takes-list li')?.dataset.state === 'cancelled'",
                           timeout=10_000)
    row = page.locator(".pr-takes-list li").first
    assert row.locator("button.pr-take-play").count() == 0
    received = page.evaluate("__player.notesReceived")
    assert received < 4 * 8000, "the cancel came after the render had ended"
    time.sleep(1.0)
    assert page.evaluate("__player.notesReceived") == received, "nothing arrives after a cancel"
    assert page.evaluate("__player.error") is None
    screenshot(page, "app_cancelled")
    assert not failures, failures


def test_an_anonymous_session_renders_and_cancels_through_the_api(page, browser, live_app, tmp_path,
                                                                  screenshot):
    """A visitor without an account: Render and Cancel are the API's (/api/v1) with the session's
    CSRF token, and the session owns the job: its own fetches see it, a write without the token
    is refused (403), another browser's session does not find it (404)."""
    from tests.data.corpus import _many_notes_midi

    base = live_app.base_url
    long_score = tmp_path / "long_etude.mid"
    long_score.write_bytes(_many_notes_midi(8000))   # long enough to cancel midway
    uploader = browser.new_context()
    try:
        up = uploader.new_page()
        sign_up(up, base)
        score_id = upload(up, base, long_score).rstrip("/").rsplit("/", 1)[-1]
    finally:
        uploader.close()
    flip = "from webapp.models import Score; Score.objects.filter(id='{}').update(is_demo={})"
    live_app.manage("shell", "-c", flip.format(score_id, True))   # a demo: visitors may render it
    try:
        posts: list[tuple[str, str]] = []
        page.on("request", lambda r: posts.append((urlparse(r.url).path, r.headers.get("x-csrftoken", "")))
                if r.method == "POST" else None)
        page.goto(f"{base}/scores/{score_id}/")
        wait_ready(page)
        page.fill(".pr-variations", "4")
        page.click(".pr-render")
        page.wait_for_function("__player.notesReceived > 0", timeout=60_000)
        page.click(".pr-cancel")
        page.wait_for_function("!__player.streaming", timeout=20_000)
        assert page.locator(".pr-status").inner_text() == "Cancelled"
        assert page.evaluate("__player.error") is None
        job_id = page.evaluate("__player.jobId")
        csrf = page.locator("#player").get_attribute("data-csrf")
        assert csrf and posts == [(f"/api/v1/scores/{score_id}/render/", csrf),
                                  (f"/api/v1/jobs/{job_id}/cancel/", csrf)], posts
        fetch = "([url, method]) => fetch(url, {method}).then(async (r) => [r.status, await r.json()])"
        status, job = page.evaluate(fetch, [f"/api/v1/jobs/{job_id}/", "GET"])
        assert status == 200 and job["state"] == "cancelled", job
        status, body = page.evaluate(fetch, [f"/api/v1/jobs/{job_id}/cancel/", "POST"])
        assert status == 403 and "CSRF" in body["error"], body
        stranger = browser.new_context()
        try:
            other = stranger.new_page()
            other.goto(f"{base}/scores/{score_id}/")
            assert other.evaluate(fetch, [f"/api/v1/jobs/{job_id}/", "GET"])[0] == 404
        finally:
            stranger.close()
        screenshot(page, "app_anonymous_cancelled")
    finally:
        live_app.manage("shell", "-c", flip.format(score_id, False))


def test_the_page_resumes_its_stream_after_a_server_restart(page, live_app, tmp_path, screenshot):
    """Daphne restarted (SIGTERM, as a deploy does) while the page streams a render: the page
    reconnects on its own and gets every note once, and the take is stored whole."""
    start_long_render(page, live_app, tmp_path)
    live_app.restart_daphne(timeout_s=240)
    page.wait_for_function("__player.error || (!__player.streaming && __player.notesReceived >= 32000)",
                           timeout=240_000)
    assert page.evaluate("__player.error") is None, page.evaluate("__player.error")
    assert page.evaluate("__player.reconnects") >= 1, "the socket survived a Daphne restart?"
    assert page.evaluate("__player.notesReceived") == 4 * 8000
    page.wait_for_function("document.querySelector('.pr-takes-list li')?.dataset.state === 'done'",
                           timeout=30_000)
    screenshot(page, "app_resumed_after_restart")
