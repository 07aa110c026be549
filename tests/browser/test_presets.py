"""Presets in headless Chromium against the real app: save a preset from a take on the score page,
share it, open the share link in a fresh browser context (no login), listen to the take, apply it
to a demo score (the controls panel shows the preset's values) and hear that render stream, then
move one slider and render that variation. Screenshots: /tmp/presets-*.png."""
from __future__ import annotations

import re
import time

import pytest

from tests.browser.test_app import click_and_follow, sign_up, track_failures, upload, wait_ready

CONTROLS = {"mode": "perturb", "delta": [1.5, -1, 0, 0.25, 0], "expressiveness": 1.2,
            "base_tempo_bpm": 96, "sections": [{"from_bar": 2, "to_bar": 3, "delta": [0, 1, 0, 0, 0]}]}
PANEL = """() => ({
  seed: document.querySelector('.pr-seed').value,
  tempo: document.querySelector('.pr-base-tempo').value,
  expressiveness: document.querySelector('.pr-expressiveness').value,
  takes: document.querySelector('.pr-variations').value,
  mode: document.querySelector('.pr-mode').value,
  delta: [...document.querySelectorAll('.pr-delta')].map((s) => Number(s.value)),
  shown: [...document.querySelectorAll('.pr-delta-value')].map((o) => o.textContent),
  sections: [...document.querySelectorAll('.pr-sec-list li > span')].map((s) => s.textContent)})"""


def shot(page, name: str) -> None:
    page.screenshot(path=f"/tmp/presets-{name}.png", full_page=False)


@pytest.fixture(scope="module")
def small_score(tmp_path_factory):
    from tests.data.corpus import _many_notes_midi

    path = tmp_path_factory.mktemp("presets") / "study.mid"
    path.write_bytes(_many_notes_midi(160))
    return path


def test_save_share_listen_and_apply_to_a_demo(page, browser, live_app, small_score):
    base = live_app.base_url
    live_app.manage("load_demos")
    failures = track_failures(page)
    sign_up(page, base)
    upload(page, base, small_score)
    wait_ready(page)
    page.evaluate(f"__player.player.paramsHook = () => ({{seed: 4242, controls: {CONTROLS!r}}})"
                  .replace("'", '"'))
    click_and_follow(page)

    # Save as preset, from the take's row.
    page.wait_for_selector(".pr-takes-list li .preset-save", timeout=15_000)
    page.click(".pr-takes-list li .preset-save")
    page.fill(".preset-save-form input[name=name]", "Bold and bright")
    shot(page, "save-form")
    page.click(".preset-save-form .preset-save-ok")
    saved = page.wait_for_selector("a.preset-saved", timeout=15_000)
    assert "Bold and bright" in saved.inner_text()
    shot(page, "saved")
    saved.click()
    page.wait_for_url(re.compile(r"/presets/[0-9a-f-]{36}/$"))
    assert page.locator("h1.preset-name").inner_text() == "Bold and bright"
    page.click("button.preset-share")
    page.wait_for_selector("a.preset-share-link")
    share_url = page.locator("a.preset-share-link").inner_text()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/p/[A-Za-z0-9_-]{22,}/", share_url), share_url
    shot(page, "owner")

    # A fresh context: no account, no cookies.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        guest = context.new_page()
        guest.errors = []
        guest.on("pageerror", lambda e: guest.errors.append(str(e)))
        guest_failures = track_failures(guest)
        guest.goto(share_url)
        assert guest.locator("h1.preset-name").inner_text() == "Bold and bright"
        assert "Log in" in guest.locator(".site-header").inner_text()
        assert guest.locator(".preset-edit-form").count() == 0
        guest.click(".preset-listen-play")
        guest.wait_for_function("__presetListen.state === 'playing' || __presetListen.error", timeout=60_000)
        assert guest.evaluate("__presetListen.error") is None
        p0 = guest.evaluate("__presetListen.position()")
        time.sleep(0.8)
        assert guest.evaluate("__presetListen.position()") > p0 + 0.5
        assert guest.evaluate("__presetListen.notesReceived") == 160
        guest.wait_for_function("__presetListen.peakLevel > 0.01", timeout=5_000)
        shot(guest, "shared-listen")
        guest.click(".preset-listen-play")  # pause

        # Apply it to a demo score: the score page opens with the preset ready; render and hear it.
        demos = guest.locator("#preset-apply li.demo a.preset-apply-link")
        assert demos.count() >= 3
        demos.filter(has_text="Mozart").first.click()
        guest.wait_for_url(re.compile(r"/scores/[0-9a-f-]{36}/\?preset="))
        wait_ready(guest)
        guest.wait_for_selector(".preset-banner button.preset-apply", timeout=15_000)
        assert "Bold and bright" in guest.locator(".preset-banner").inner_text()
        # The controls panel shows the preset: what is seen is what renders.
        assert guest.evaluate(PANEL) == {
            "seed": "4242", "tempo": "96", "expressiveness": "1.2", "takes": "1", "mode": "perturb",
            "delta": [1.5, -1, 0, 0.25, 0], "shown": ["1.5", "-1.0", "0.0", "0.25", "0.0"],
            "sections": ["bars 2–3: Δ = [0.0, 1.0, 0.0, 0.0, 0.0]"]}
        assert guest.evaluate("__player.player.controls.params()") == {"seed": 4242, "controls": CONTROLS}
        shot(guest, "demo-banner")
        guest.click(".preset-banner button.preset-apply")
        guest.wait_for_function("__player.streaming || __player.error", timeout=30_000)
        guest.wait_for_function("__player.notesReceived > 0 || __player.error", timeout=120_000)
        guest.wait_for_function("__player.state === 'playing' || __player.error", timeout=60_000)
        assert guest.evaluate("__player.error") is None, guest.evaluate("__player.error")
        shot(guest, "demo-streaming")
        guest.wait_for_function("!__player.streaming", timeout=300_000)
        assert guest.evaluate("__player.error") is None, guest.evaluate("__player.error")
        log = guest.evaluate("__player.chunkLog")
        assert [c for c in log if c["state"] == "playing"], "playback started while it streamed"
        assert guest.evaluate("__player.peakLevel") > 0.01, "the render is heard"
        guest.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 1",
                                timeout=10_000)
        takes = guest.evaluate("fetch(location.pathname + 'takes.json').then(r => r.json())")
        assert takes[0]["seed"] == 4242 and takes[0]["controls"] == CONTROLS, takes
        assert takes[0]["performance_id"] == guest.evaluate("__player.performanceId")
        assert guest.locator(".pr-takes-list .preset-save").count() == 0, "no saving without an account"
        shot(guest, "demo-done")

        # A variation of the preset: one slider moved, rendered with the preset.
        guest.locator(".pr-delta-2").fill("0.7")
        assert guest.evaluate(PANEL)["shown"] == ["1.5", "-1.0", "0.7", "0.25", "0.0"]
        click_and_follow(guest, ".preset-banner button.preset-apply")
        guest.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 2",
                                timeout=10_000)
        takes = guest.evaluate("fetch(location.pathname + 'takes.json').then(r => r.json())")
        varied = next(t for t in takes if t["performance_id"] == guest.evaluate("__player.performanceId"))
        assert varied["seed"] == 4242, varied
        assert varied["controls"] == {**CONTROLS, "delta": [1.5, -1, 0.7, 0.25, 0]}, varied
        shot(guest, "demo-variation")
        assert not guest_failures, guest_failures
        assert not guest.errors, guest.errors
    finally:
        context.close()

    # The owner's API token and the API page (operations listed from the schema, no CDN).
    page.click(".site-header a:text('API')")
    page.wait_for_url(re.compile(r"/api/$"))
    assert page.locator("tr.api-op").count() >= 20
    shot(page, "api-docs")
    page.click("a:text('get your token')")
    token = page.locator("code.api-token").inner_text()
    assert re.fullmatch(r"[0-9a-f]{40}", token)
    shot(page, "api-token")
    assert not failures, failures
