"""The player against the dev fixture site (faked WebSocket, recorded notes): stream
ordering, playback during streaming, highlighting, transport, takes. The same user path
against the real app is in test_app.py."""
from __future__ import annotations

import time


STATS = """() => ({state: __player.state, streaming: __player.streaming, pos: __player.position(),
  audio: __player.audioTime(), received: __player.notesReceived, scheduled: __player.notesScheduled,
  lit: __player.highlighted, litTotal: __player.highlightsTotal, late: __player.notesLate,
  reconnects: __player.reconnects, duplicates: __player.duplicates, error: __player.error,
  peak: __player.peakLevel})"""


def open_ready(page, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_function("window.__player && __player.scoreReady", timeout=60_000)
    page.wait_for_function("__player.samplesLoaded >= 30", timeout=60_000)


def test_plays_and_highlights_while_streaming(page, dev_site, screenshot):
    open_ready(page, dev_site)
    assert page.locator(".pr-score svg").count() >= 1
    page.click(".pr-render")
    page.wait_for_function("__player.state === 'playing'", timeout=10_000)
    first = page.evaluate(STATS)
    assert first["streaming"], "playback must start before the render ends"
    time.sleep(0.8)
    later = page.evaluate(STATS)
    assert later["streaming"], "the fixture streams for ~5 s; it should still be streaming"
    assert later["pos"] - first["pos"] > 0.5, (first, later)
    assert later["audio"] - first["audio"] > 0.5
    assert later["scheduled"] > 0 and later["litTotal"] > 0
    assert later["peak"] > 0.01, "the piano is heard (output peak) while the job streams"
    screenshot(page, "dev_streaming")
    page.wait_for_function("!__player.streaming", timeout=30_000)
    done = page.evaluate(STATS)
    total = page.evaluate("Number(document.getElementById('player').dataset.nNotes)")
    assert done["received"] == total, "every note exactly once, despite the duplicate and the drop"
    assert done["reconnects"] == 1 and done["duplicates"] >= 1
    assert done["late"] == 0, page.evaluate("__player.player.transport.lateLog")
    assert done["error"] is None
    conns = page.evaluate("__fakeWS.connections")
    assert [c["from"] for c in conns] == [0, 6], "reconnects ask for the first chunk it lacks"
    onsets = page.evaluate("__player.notes().map(n => n.onset)")
    assert onsets == sorted(onsets)
    assert page.locator(".pr-takes-list li").count() == 1
    assert not page.errors, page.errors


def test_pause_seek_and_tempo(page, dev_site, screenshot):
    open_ready(page, dev_site)
    page.click(".pr-render")
    page.wait_for_function("!__player.streaming && __player.state === 'playing'", timeout=30_000)
    page.click(".pr-play")  # pause
    assert page.evaluate("__player.state") == "paused"
    p1 = page.evaluate("__player.position()")
    time.sleep(0.4)
    assert page.evaluate("__player.position()") == p1
    assert page.evaluate("__player.highlighted") == 0
    # seek with the slider to 60 s (the fixture lasts ~3 min) and resume
    page.eval_on_selector(".pr-seek", "(el) => { el.value = 60; el.dispatchEvent(new Event('input')); "
                                      "el.dispatchEvent(new Event('change')); }")
    assert abs(page.evaluate("__player.position()") - 60) < 0.01
    page.click(".pr-play")
    time.sleep(0.6)
    pos = page.evaluate("__player.position()")
    assert 60.3 < pos < 61.5
    assert page.locator(".pr-time").inner_text().startswith("1:0")
    tempo = page.locator(".pr-tempo").inner_text()
    assert tempo.startswith("♩ = ") and 80 <= int(tempo.split("= ")[1]) <= 112
    page.wait_for_function("__player.highlighted > 0", timeout=5_000)
    # the page followed the music down the score
    assert page.evaluate("window.scrollY") > 300
    screenshot(page, "dev_seek")
    assert not page.errors, page.errors


def test_takes_replay_and_render_again(page, dev_site):
    open_ready(page, dev_site)
    n_before = page.locator(".pr-takes-list li").count()
    page.click(".pr-render")
    page.wait_for_function("!__player.streaming", timeout=30_000)
    page.wait_for_function(f"document.querySelectorAll('.pr-takes-list li').length === {n_before + 1}")
    assert page.locator(".pr-render").inner_text() == "Render again"
    page.click(".pr-render")
    page.wait_for_function("!__player.streaming && __player.notesReceived > 0", timeout=30_000)
    page.wait_for_function(f"document.querySelectorAll('.pr-takes-list li').length === {n_before + 2}")
    takes = page.locator(".pr-takes-list li")
    first = takes.nth(n_before)
    assert first.locator("a.pr-dl-mid").get_attribute("href").endswith(".mid")
    assert {a.inner_text() for a in first.locator("a").all()} == {"MIDI", "WAV", "OGG", "CSV"}
    seeds = [t.inner_text() for t in takes.all()]
    assert seeds[-1] != seeds[-2], "another take gets another seed"
    first.locator("button.pr-take-play").click()
    page.wait_for_function("__player.state === 'playing'", timeout=10_000)
    assert "pr-current" in first.get_attribute("class")
    a = page.evaluate("__player.position()")
    time.sleep(0.5)
    assert page.evaluate("__player.position()") > a + 0.3
    # A/B: switch to the other take at the same spot
    page.evaluate("() => { const p = __player.player; "
                  "return p.replay(p.takes.takes[p.takes.takes.length - 1], {at: 30}); }")
    assert page.evaluate("__player.state") == "playing"
    assert 29.9 < page.evaluate("__player.position()") < 31
    assert not page.errors, page.errors


def test_repeats_highlight_the_same_element_twice(page, dev_site):
    open_ready(page, dev_site)
    vid = page.evaluate("Object.values(__player.player.notemap)[0]")
    page.evaluate(
        """(vid) => { const p = __player.player; p.ctx.resume(); p.transport.reset();
        p.transport.add([
          {i: 0, id: vid + '-1', pitch: 60, onset: 0.0, duration: 0.3, velocity: 70, tempo: 100, z: []},
          {i: 1, id: vid + '-2', pitch: 60, onset: 1.0, duration: 0.3, velocity: 70, tempo: 90, z: []}]);
        p.transport.markComplete(); p.stats.highlightsTotal = 0; p.transport.play(); }""", vid)
    page.wait_for_function("__player.state === 'ended'", timeout=5_000)
    assert page.evaluate("__player.highlightsTotal") == 2
    assert page.evaluate("__player.notesScheduled") == 2


def test_click_a_note_seeks_and_layout_follows_the_width(page, dev_site, screenshot):
    open_ready(page, dev_site)
    page.click(".pr-render")
    page.wait_for_function("!__player.streaming && __player.state === 'playing'", timeout=30_000)
    page.keyboard.press("Space")
    assert page.evaluate("__player.state") == "paused"
    # a note of the second half: clicking it seeks to the next time it sounds (repeats: maybe twice)
    target = page.evaluate("""() => { const ns = __player.notes(); const n = ns[Math.floor(ns.length / 2)];
        const el = __player.player.notemap[n.id.replace(/-\\d+$/, '')];
        const onsets = ns.filter(m => __player.player.notemap[m.id.replace(/-\\d+$/, '')] === el).map(m => m.onset);
        return {el, onsets, now: __player.position()}; }""")
    assert target["el"] and target["onsets"]
    want = next((t for t in target["onsets"] if t > target["now"] + 0.05), target["onsets"][0]) - 0.02
    page.locator(f"[id='{target['el']}']").scroll_into_view_if_needed()
    page.locator(f"[id='{target['el']}'] .notehead").first.click(force=True)
    pos = page.evaluate("__player.position()")
    assert abs(pos - want) < 0.01, (pos, want, target)
    page.keyboard.press("Space")
    page.wait_for_function("__player.highlighted > 0", timeout=5_000)
    # narrower window: Verovio lays the score out again, ids (and highlighting) stay valid
    systems_wide = page.locator(".pr-score g.system").count()
    page.set_viewport_size({"width": 640, "height": 900})
    page.wait_for_function(f"document.querySelectorAll('.pr-score g.system').length > {systems_wide}",
                           timeout=20_000)
    assert page.locator(f"[id='{target['el']}']").count() == 1
    page.wait_for_function("__player.highlighted > 0", timeout=5_000)
    screenshot(page, "dev_narrow")
    assert not page.errors, page.errors


def test_background_samples_wait_while_a_render_starts_then_all_load(page, dev_site):
    """The piano layers after the first load two at a time in the background; a Render click
    holds them until the first sound (they took the connections the render request needed),
    and every sample is in at the end."""
    open_ready(page, dev_site)
    total = page.evaluate("__player.samplesTotal")
    sampler = "__player.player.sampler"
    page.evaluate(f"{sampler}.holdBackground()")
    held_at = page.evaluate("__player.samplesLoaded")
    time.sleep(1.5)
    after = page.evaluate("__player.samplesLoaded")
    assert after < total, "every sample loaded before the hold: nothing left to test"
    assert after - held_at <= 2, "downloads went on while held (two may have been in flight)"
    page.evaluate(f"{sampler}.resumeBackground()")
    page.wait_for_function(f"__player.samplesLoaded > {after + 2}", timeout=30_000)
    page.evaluate(f"{sampler}.holdBackground()")  # released by the first sound of a render
    page.click(".pr-render")
    page.wait_for_function("__player.state === 'playing'", timeout=10_000)
    assert page.evaluate(f"{sampler}.held") is None
    page.wait_for_function("__player.samplesLoaded === __player.samplesTotal", timeout=90_000)



SEEK = ("(el, t) => { el.value = t; el.dispatchEvent(new Event('input')); "
        "el.dispatchEvent(new Event('change')); }")


VIEW_STATE = ("(() => { const v = __player.player.score, b = v.el.getBoundingClientRect();"
              " return { now: performance.now(), handScrollUntil: v.handScrollUntil, ownScroll: v.ownScroll,"
              " pointerHeld: v.pointerHeld, follow: v.follow, lit: v.lit.size, scoreTop: b.top, scoreBottom: b.bottom,"
              " scrollY, state: __player.state, position: __player.position() }; })()")


def test_following_the_music_leaves_the_reader_and_a_pressed_button_alone(page, dev_site):
    """The page follows the music down the score, but not while a button is pressed (a click
    whose press and release land on different elements is lost: A/B clicks were) and not
    back from the takes and plots a reader has scrolled down to."""
    page.set_viewport_size({"width": 1280, "height": 600})
    open_ready(page, dev_site)
    page.click(".pr-render")
    page.wait_for_function("!__player.streaming && __player.state === 'playing'", timeout=30_000)
    page.eval_on_selector(".pr-seek", SEEK, 60)
    page.wait_for_function("window.scrollY > 150", timeout=10_000)   # it follows the music down
    # the A/B button low in the window, the top of the score above it: a scroll by script, which
    # the view takes as the reader's even while its own smooth scroll is in flight, and then
    # waits 4 s before it follows again, as after a wheel
    page.evaluate("window.scrollBy(0, document.querySelector('.pr-ab').getBoundingClientRect().top - 500)")
    page.wait_for_function("__player.player.score.handScrollUntil > performance.now() + 3000", timeout=1_000)
    page.wait_for_timeout(300)
    first_system = "document.querySelector('.pr-score .system').getBoundingClientRect()"
    assert page.evaluate(f"{first_system}.bottom") < 90, "the score's first system must be out of sight"
    box = page.locator(".pr-ab").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    held = page.evaluate("window.scrollY")
    # the music jumps back to the top, out of sight: past the 4 s, the page does not move under
    # the press
    page.wait_for_function("performance.now() > __player.player.score.handScrollUntil + 200", timeout=10_000)
    page.eval_on_selector(".pr-seek", SEEK, 0)
    page.wait_for_function("__player.highlighted > 0 && __player.position() < 2", timeout=5_000)
    page.wait_for_timeout(1_000)
    assert page.evaluate("window.scrollY") == held
    lit_in_sight = ("[...document.querySelectorAll('.pr-score .pr-playing')].some((e) => {"
                    " const r = e.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })")
    assert not page.evaluate(f"() => {lit_in_sight}")
    page.mouse.up()
    try:   # released: it catches up at once, not at the next note
        page.wait_for_function(lit_in_sight, timeout=5_000)
    except Exception as exc:
        raise AssertionError(f"the view did not follow after the release: {page.evaluate(VIEW_STATE)}") from exc
    assert page.evaluate("window.scrollY") < held
    # the reader scrolls down to the end of the page, the score out of sight: it stays there
    page.eval_on_selector(".pr-seek", SEEK, 60)
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(300)
    assert page.evaluate("document.querySelector('.pr-score').getBoundingClientRect().bottom") < 100
    below = page.evaluate("window.scrollY")
    lit = page.evaluate("__player.highlightsTotal")
    page.wait_for_timeout(5_000)                                      # past the 4 s pause
    assert page.evaluate("__player.highlightsTotal") > lit + 5, "the music went on"
    assert page.evaluate("window.scrollY") == below
    # back on the score, it follows again once the hand scroll's pause is over
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_function("window.scrollY > 150", timeout=10_000)
    assert not page.errors, page.errors
