"""A listening test end to end in headless Chromium against the real app (Daphne, a Celery
worker, Redis): a staff user creates a MOS survey in the pages, the worker renders the stimuli,
the staff user previews and opens it; a participant (with an external id) consents, passes the
volume check, plays every clip to the end (the answers stay locked until then), closes the tab
after the practice item and resumes, answers the attention check, fills in the questionnaire and
gets the completion code; the results page shows the statistics and plots.
Screenshots: /tmp/surveys-{new,preview,item,results}.png."""
from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.browser.test_app import sign_up, track_failures
from tests.integration.test_surveys import complete


@pytest.fixture(scope="module")
def melody(tmp_path_factory) -> Path:
    from tests.data.corpus import make_midi

    rng = np.random.default_rng(11)
    notes = [(int(60 + rng.integers(-7, 8)), i * 0.5, 0.5, int(rng.integers(50, 90)))
             for i in range(160)]
    return make_midi(tmp_path_factory.mktemp("melody") / "melody.mid", notes, tempo_bpm=120)


def create_survey(page, base: str, live_app, melody: Path, kind: str = "mos") -> str:
    name = sign_up(page, base)
    live_app.manage("shell", "-c", "from django.contrib.auth.models import User; "
                    f"User.objects.filter(username='{name}').update(is_staff=True)")
    page.goto(base + "/")
    page.set_input_files(".upload-form input[type=file]", str(melody))
    page.click(".upload-form [type=submit]")
    page.wait_for_url(re.compile(r"/scores/[0-9a-f-]{36}/$"), timeout=120_000)
    page.goto(base + "/")
    page.click("text=Listening tests")
    page.click("text=New survey")
    page.fill("input[name=title]", f"Browser {kind} test")
    page.select_option("select[name=kind]", kind)
    page.check("input[name=scores] >> nth=-1")  # the upload (demos would come first)
    page.fill("input[name=segment_sec]", "2")
    page.fill("input[name=n_attention]", "1")
    page.fill("input[name=completion_code]", "DONE-1234")
    if kind == "mos":
        page.screenshot(path="/tmp/surveys-new.png", full_page=True)
    page.click("main form [type=submit]")
    page.wait_for_url(re.compile(r"/surveys/[0-9a-f-]{36}/$"))
    page.click("#prepare")
    page.wait_for_selector("#survey-state:text-is('ready')", timeout=240_000)
    audios = page.locator(".preview audio")
    # MOS: deadpan, humanizer, model, and the practice clip; A/B: A1 A2 B1 B2 of two pairs.
    assert audios.count() == (4 if kind == "mos" else 8)
    # Preview: the browser can decode and play a stored stimulus.
    assert page.evaluate("""async () => { const a = document.querySelector('.preview audio');
        a.muted = true; await a.play(); await new Promise(r => setTimeout(r, 300));
        const t = a.currentTime; a.pause(); return t; }""") > 0
    page.screenshot(path=f"/tmp/surveys-preview-{kind}.png", full_page=True)
    if kind == "mos":  # the researcher tries it first, in a new tab: the participants' pages
        with page.expect_popup() as popup:
            page.click("#try")
        tryout = popup.value
        tryout.wait_for_function("window.__survey && __survey.stage === 'instructions'")
        assert "not counted" in tryout.inner_text("#preview-banner")
        tryout.screenshot(path="/tmp/surveys-try.png")
        tryout.close()
    page.click("#open")
    page.wait_for_selector("#survey-state:text-is('open')")
    return page.locator("input.participant-url").input_value()


def watch(page, errors: list) -> list:
    """Console errors and uncaught page errors of ``page``, collected into ``errors``."""
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def play_all_and_answer(page) -> None:
    """Play each clip of the current item to the end, then answer (the attention check as told)."""
    fields = page.locator(".answers input[type=radio]").first
    assert fields.is_disabled(), "answers are locked until every clip has played"
    clips = page.locator(".clip")
    for k in range(clips.count()):
        before = page.evaluate("__survey.played")
        t0 = time.monotonic()
        clips.nth(k).locator("button.play").click()
        page.wait_for_function(f"__survey.played > {before}", timeout=60_000)
        assert time.monotonic() - t0 > 1.0, "a clip played to its end in real time"
    assert not fields.is_disabled()
    text = " ".join(page.locator(".instruction").all_inner_texts())
    pos = page.evaluate("__survey.position")
    if page.locator("input[name=relation]").count():  # A/B: same (1) or reversed (-1), 0-2
        told = re.search(r"answer “(same|reversed)”", text)
        picks = {"relation": "-1" if told and told.group(1) == "reversed" else "1",
                 "confidence": "2" if told else str(pos % 3)}
    else:
        want = re.findall(r"(\d) for (naturalness|expressiveness)", text)
        picks = {q: v for v, q in want} or {"naturalness": str(2 + pos % 4),
                                             "expressiveness": str(5 - pos % 4)}
    for q, v in picks.items():
        page.check(f"input[name={q}][value='{v}']")
    position = page.evaluate("__survey.position")
    page.click(".answers button[type=submit]")
    page.wait_for_function(f"__survey.position !== {position} || __survey.stage === "
                           "'questionnaire'", timeout=30_000)
    assert page.evaluate("__survey.error") is None, page.evaluate("__survey.error")


def test_participant_takes_a_survey_and_results_show_statistics(browser, page, live_app, melody):
    base = live_app.base_url
    failures = track_failures(page)
    link = create_survey(page, base, live_app, melody)

    ctx = browser.new_context(viewport={"width": 1000, "height": 800})
    p = ctx.new_page()
    p_fail, p_errors = track_failures(p), watch(p, [])
    pid = f"PB{uuid.uuid4().hex[:6]}"
    p.goto(f"{link}?pid={pid}")
    p.check("input[name=consent]")
    p.click("text=Start")
    p.wait_for_function("window.__survey && __survey.stage === 'instructions'")
    p.click("#to-volume")
    p.click("#volume-play")
    p.wait_for_selector("#volume-ok:enabled")
    p.click("#volume-ok")
    assert p.evaluate("__survey.stage") == "practice"
    play_all_and_answer(p)
    # Close the tab and come back by the same link: resumes after the practice item.
    p.close()
    p = ctx.new_page()
    p_fail2 = track_failures(p)
    watch(p, p_errors)
    p.goto(f"{link}?pid={pid}")
    p.wait_for_function("window.__survey && __survey.stage === 'instructions'")
    assert "Welcome back" in p.inner_text("#survey-app")
    p.click("#to-volume")
    p.click("#volume-play")
    p.wait_for_selector("#volume-ok:enabled")
    p.click("#volume-ok")
    assert p.evaluate("__survey.position") == 1
    p.screenshot(path="/tmp/surveys-item.png")
    while p.evaluate("__survey.stage") == "item":
        play_all_and_answer(p)
    assert p.evaluate("__survey.stage") == "questionnaire"
    p.select_option("#age_band", "25-34")
    p.select_option("#training_band", "3-5")
    p.click("#submit-survey")
    p.wait_for_selector("#completion-code")
    assert p.inner_text("#completion-code") == "DONE-1234"
    assert not p_fail and not p_fail2 and not p_errors, (p_fail, p_fail2, p_errors)
    ctx.close()

    # Three more participants over HTTP (one fails the attention check) for the statistics.
    threads = [threading.Thread(target=complete, args=(live_app, link.rstrip("/").split("/")[-1]),
                                kwargs={"fail_attention": k == 2}) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    page.click("text=Results")
    page.wait_for_selector("#mos-table")
    text = page.inner_text("main")
    assert "4 submitted (3 included" in text and "1 excluded" in text
    assert re.search(r"Kruskal-Wallis H = \d+\.\d+, df = 2, p = [<\d]", text), text
    assert "Mann-Whitney U" in text and "95% CI" in text
    assert page.locator("svg.plot").count() == 2
    assert page.locator("svg.plot rect").count() == 6  # 3 conditions x 2 questions
    page.screenshot(path="/tmp/surveys-results.png", full_page=True)
    assert not failures and not page.errors, (failures, page.errors)


def test_ab_survey_in_the_browser(browser, page, live_app, melody):
    """The A/B test: four clips per item (A1, A2, B first, B second), each played to the end;
    "same / reversed" with a confidence; the results show the Wilcoxon signed-rank test."""
    base = live_app.base_url
    failures = track_failures(page)
    link = create_survey(page, base, live_app, melody, kind="ab")
    ctx = browser.new_context()
    p = ctx.new_page()
    p_fail, p_errors = track_failures(p), watch(p, [])
    p.goto(link)
    p.check("input[name=consent]")
    p.click("text=Start")
    p.wait_for_function("window.__survey && __survey.stage === 'instructions'")
    p.click("#to-volume")
    p.click("#volume-play")
    p.wait_for_selector("#volume-ok:enabled")
    p.click("#volume-ok")
    labels = p.locator(".clip button.play").all_inner_texts()
    assert labels == ["Play A1", "Play A2", "Play B first", "Play B second"]
    while p.evaluate("__survey.stage") in ("practice", "item"):
        play_all_and_answer(p)
    p.select_option("#age_band", "45-54")
    p.select_option("#training_band", "none")
    p.click("#submit-survey")
    p.wait_for_selector("#completion-code")
    assert p.evaluate("__survey.played") == 12  # 3 items x 4 clips, each to its end
    assert not p_fail and not p_errors, (p_fail, p_errors)
    ctx.close()
    page.click("text=Results")
    page.wait_for_selector("#ab-table")
    text = page.inner_text("main")
    assert "1 submitted (1 included" in text
    assert re.search(r"Signed mean confidence\s+[-\d.]+", text), text
    assert "Wilcoxon signed-rank vs 0" in text and page.locator("svg.plot").count() == 1
    page.screenshot(path="/tmp/surveys-results-ab.png", full_page=True)
    assert not failures and not page.errors, (failures, page.errors)
