"""Shaping interpretations in headless Chromium against the real app: move a Delta slider and
hear a different take, pick a passage on the engraving, render several takes at once and switch
between them A/B while playing, upload a reference MIDI and render in its style, and the plots
drawn for each. Screenshots: /tmp/interp-*.png (and var/screenshots/interp_*.png)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser.test_app import click_and_follow, render_take, sign_up, track_failures, upload, wait_ready

N_NOTES = 300


@pytest.fixture(scope="module")
def midi_score(tmp_path_factory) -> Path:
    """A 300-note MIDI score (about 19 bars of sixteenths); also a deadpan performance of itself."""
    from tests.data.corpus import _many_notes_midi

    path = tmp_path_factory.mktemp("interp") / "etude.mid"
    path.write_bytes(_many_notes_midi(N_NOTES))
    return path


@pytest.fixture(scope="module")
def other_midi(tmp_path_factory) -> Path:
    """A performance of another piece: a melody over a bass line, not the etude's scale."""
    from tests.data.corpus import make_midi

    notes = [(84 - (k * 7) % 25, k * 0.75, 0.5, 80) for k in range(80)]
    notes += [(40 + (k * 5) % 12, k * 1.5, 1.0, 70) for k in range(40)]
    return make_midi(tmp_path_factory.mktemp("other") / "other_piece.mid", notes)


def shot(page, screenshot, name: str) -> None:
    screenshot(page, f"interp_{name}")
    page.screenshot(path=f"/tmp/interp-{name}.png", full_page=True)


def canvas_ink(page, selector: str) -> int:
    """Pixels of a canvas that are not white (drawn)."""
    return page.evaluate("""(sel) => {
        const c = document.querySelector(sel);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let k = 0; k < d.length; k += 4) if (d[k] < 240 || d[k + 1] < 240 || d[k + 2] < 240) n += 1;
        return n;
    }""", selector)


def take_notes(page, k: int) -> list:
    """Notes of the k-th take of the list, from its notes_url."""
    return page.evaluate("""async (k) => {
        const t = __player.player.takes.takes[k];
        const r = await fetch(t.notes_url);
        return (await r.json()).notes.map((n) => [n.i, n.onset, n.velocity, n.duration]);
    }""", k)


def test_a_slider_changes_the_next_take_and_its_plots_are_drawn(page, live_app, midi_score,
                                                                 screenshot):
    failures = track_failures(page)
    sign_up(page, live_app.base_url)
    upload(page, live_app.base_url, midi_score)
    wait_ready(page)
    page.fill(".pr-seed", "1234")
    page.select_option(".pr-mode", "perturb")       # steered, Delta 0: the prior mean
    take1 = render_take(page)
    assert take1["received"] == N_NOTES
    # Move the first latent direction's slider by hand (keyboard), then render again.
    page.focus(".pr-delta-0")
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    assert page.locator(".pr-slider output").first.inner_text() == "2.0"
    take2 = render_take(page)
    assert take2["performanceId"] != take1["performanceId"]
    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 2")
    rows = [li.inner_text() for li in page.locator(".pr-takes-list li").all()]
    assert "seed 1234" in rows[0] and "seed 1234" in rows[1]
    assert "Δ 0.0 0.0 0.0 0.0 0.0" in rows[0] and "Δ 2.0 0.0 0.0 0.0 0.0" in rows[1], rows
    a, b = take_notes(page, 0), take_notes(page, 1)
    assert len(a) == len(b) == N_NOTES and sorted(a) != sorted(b), "the slider did not change the notes"
    # The plots of the take just rendered: tempo curve, velocities, z roll in several colours.
    stats = page.evaluate("__player.plots")
    assert stats["tempo"] > 10 and stats["velocity"] == N_NOTES and stats["colours"] > 20, stats
    for sel in (".pr-plot-tempo", ".pr-plot-velocity", ".pr-plot-zroll"):
        assert canvas_ink(page, sel) > 2000, sel
    page.locator(".pr-plots").scroll_into_view_if_needed()
    shot(page, screenshot, "slider-plots")

    # A passage picked on the engraving: two note clicks give its bars, then a section.
    page.click(".pr-sec-pick")
    for k in (20, 60):    # a note head in the middle of the window (clear of the sticky bar)
        page.evaluate("(k) => document.querySelectorAll('.pr-score g.note')[k]"
                      ".scrollIntoView({block: 'center'})", k)
        page.locator(".pr-score g.note").nth(k).locator(".notehead").first.click()
    lo, hi = int(page.input_value(".pr-sec-from")), int(page.input_value(".pr-sec-to"))
    assert 1 <= lo < hi <= 19, (lo, hi)
    page.focus(".pr-delta-2")
    for _ in range(15):
        page.keyboard.press("ArrowLeft")
    page.click(".pr-sec-add")
    assert page.locator(".pr-sec").count() == 1
    assert f"bars {lo}–{hi}" in page.locator(".pr-sec").inner_text()
    render_take(page)
    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 3")
    controls = page.evaluate("__player.player.takes.takes[2].controls")
    # The section keeps the sliders' Delta; the sliders return to 0 for the rest of the piece.
    assert controls["sections"] == [{"from_bar": lo, "to_bar": hi, "delta": [2, 0, -1.5, 0, 0]}]
    assert controls["delta"] == [0, 0, 0, 0, 0] and controls["mode"] == "perturb"
    page.locator(".pr-controls").scroll_into_view_if_needed()
    shot(page, screenshot, "sections")
    assert not failures, failures
    assert not page.errors, page.errors


def test_several_takes_at_once_compared_and_switched_ab(page, live_app, midi_score, screenshot):
    failures = track_failures(page)
    sign_up(page, live_app.base_url)
    upload(page, live_app.base_url, midi_score)
    wait_ready(page)
    page.fill(".pr-variations", "2")
    click_and_follow(page)
    assert page.evaluate("__player.notesReceived") == 2 * N_NOTES
    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 2")
    page.wait_for_function("__player.compared.length === 2")    # one job's takes: compared at once
    rows = [li.inner_text() for li in page.locator(".pr-takes-list li").all()]
    assert "variation 1 of 2" in rows[0] and "variation 2 of 2" in rows[1], rows
    page.wait_for_function("__player.plots.spread && __player.plots.spread.notes > 0", timeout=10_000)
    spread = page.evaluate("__player.plots.spread")
    assert spread["notes"] == N_NOTES and spread["top"] >= N_NOTES // 10 - 1
    assert canvas_ink(page, ".pr-plot-spread") > 2000
    ids = page.evaluate("__player.compared")
    # A/B while playing: the other take goes on from the same position.
    page.wait_for_function("__player.state === 'playing'", timeout=20_000)
    time.sleep(1.0)
    first = page.evaluate("__player.performanceId")
    pos = page.evaluate("__player.position()")
    page.click(".pr-ab")
    page.wait_for_function("(prev) => __player.performanceId !== prev && __player.state === 'playing'",
                           arg=first, timeout=20_000)
    after = page.evaluate("__player.position()")
    assert page.evaluate("__player.performanceId") in ids
    assert pos - 0.2 < after < pos + 2.0, (pos, after)
    time.sleep(0.5)
    assert page.evaluate("__player.position()") > after + 0.3, "the switched take plays on"
    page.click(".pr-ab")
    page.wait_for_function("(prev) => __player.performanceId === prev", arg=first, timeout=20_000)
    assert page.evaluate("__player.abSwitches") == 2
    page.locator(".pr-takes").scroll_into_view_if_needed()
    shot(page, screenshot, "ab-compare")
    assert not failures, failures
    assert not page.errors, page.errors


def test_upload_a_reference_play_it_and_render_in_its_style(page, live_app, midi_score,
                                                            other_midi, screenshot):
    failures = track_failures(page)
    sign_up(page, live_app.base_url)
    upload(page, live_app.base_url, midi_score)
    wait_ready(page)
    # Another piece first: refused with the aligner's reason, nothing listed.
    page.set_input_files(".pr-ref-file", str(other_midi))
    page.click(".pr-ref-upload")
    page.wait_for_selector(".pr-ref-error:not([hidden])", timeout=120_000)
    err = page.locator(".pr-ref-error").inner_text()
    assert "The reference was not stored" in err and "performance of this piece" in err, err
    assert page.locator(".pr-ref").count() == 0
    shot(page, screenshot, "reference-refused")
    # The score's own MIDI is a (deadpan) performance of it.
    page.set_input_files(".pr-ref-file", str(midi_score))
    page.click(".pr-ref-upload")
    page.wait_for_selector(".pr-ref", timeout=120_000)
    report = page.locator(".pr-ref-report").inner_text()
    assert f"{N_NOTES} notes matched" in report and "0 extra notes" in report, report
    assert page.locator(".pr-ref-error").is_hidden()
    page.click(".pr-ref-play")
    page.wait_for_function("__player.referenceId && __player.state === 'playing'", timeout=20_000)
    page.wait_for_function("__player.highlighted > 0", timeout=10_000)
    p0 = page.evaluate("__player.position()")
    time.sleep(0.5)
    assert page.evaluate("__player.position()") > p0 + 0.3
    ref_id = page.locator(".pr-ref").get_attribute("data-reference-id")
    assert page.locator(".pr-reference-select").input_value() == ""
    click_and_follow(page, ".pr-ref-use")          # selects it and renders
    page.wait_for_function("document.querySelectorAll('.pr-takes-list li').length === 1")
    assert page.evaluate("__player.player.takes.takes[0].controls") == {"reference_id": ref_id}
    assert "in a reference’s style" in page.locator(".pr-takes-list li").first.inner_text()
    assert page.evaluate("__player.notesReceived") == N_NOTES
    page.locator(".pr-references").scroll_into_view_if_needed()
    shot(page, screenshot, "reference")
    page.click(".pr-ref-delete")
    page.wait_for_function("!document.querySelector('.pr-ref')", timeout=10_000)
    assert page.locator(".pr-reference-select option").count() == 1
    assert page.evaluate("fetch(location.pathname + 'references').then((r) => r.json())") == []
    assert not [f for f in failures if "/references" not in f], failures
    assert not [e for e in page.errors if "400" not in e], page.errors


def test_ab_switches_between_the_variations_of_a_render_still_streaming(page, live_app,
                                                                        tmp_path, screenshot):
    from tests.data.corpus import _many_notes_midi

    long_score = tmp_path / "long_etude.mid"
    long_score.write_bytes(_many_notes_midi(8000))    # streams for a while; cancelled below
    sign_up(page, live_app.base_url)
    upload(page, live_app.base_url, long_score)
    wait_ready(page)
    page.fill(".pr-variations", "2")
    page.click(".pr-render")
    page.wait_for_function("__player.streaming && __player.state === 'playing' && "
                           "__player.player.live.size === 2", timeout=60_000)
    assert page.evaluate("__player.liveVariation") == 0
    time.sleep(0.5)
    pos = page.evaluate("__player.position()")
    page.click(".pr-ab")
    assert page.evaluate("__player.streaming"), "the render ended before the switch"
    assert page.evaluate("__player.liveVariation") == 1
    assert "hearing variation 2 of 2" in page.locator(".pr-ab-info").inner_text()
    page.wait_for_function("__player.notesReceived > 0 && __player.state === 'playing'")
    heard = page.evaluate("[...new Set(__player.player.transport.notes.map((n) => n.v))]")
    assert heard == [1], heard
    assert page.evaluate("__player.position()") >= pos - 0.2
    # the render may end between this check and a click, hiding the button: click in one step
    page.evaluate("() => { const b = document.querySelector('.pr-cancel');"
                  " if (__player.streaming && b && b.offsetParent) b.click(); }")
    page.wait_for_function("!__player.streaming", timeout=20_000)
    # a cancel that crosses the end of the render is answered 409 (the job has ended): not an error
    assert not [e for e in page.errors if "409" not in e], page.errors


def peak_voices(page, seconds: float = 2.5) -> int:
    """The most sampler voices sounding at once, over ``seconds`` of playback, after their key's
    release has died away (only the sustain pedal keeps them)."""
    page.wait_for_function("__player.state === 'playing' && __player.position() > 1.0", timeout=30_000)
    peak = 0
    for _ in range(int(seconds / 0.25)):
        peak = max(peak, page.evaluate("__player.voices({pastRelease: true})"))
        time.sleep(0.25)
    return peak


def test_the_sustain_pedal_holds_notes_past_their_release_and_none_removes_it(page, live_app, midi_score,
                                                                              tmp_path, screenshot):
    """A reference that holds the sustain pedal throughout, rendered with "pedal: as the
    reference": every note sounds on after its key is released; the same with "pedal: none"
    does not (the model here is untrained: only the reference's pedal is predictable)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(midi_score))
    end = pm.get_end_time()
    pm.instruments[0].control_changes = [pretty_midi.ControlChange(64, 127, 0.0),
                                         pretty_midi.ControlChange(64, 0, end + 0.5)]
    pedalled = tmp_path / "etude_pedalled.mid"
    pm.write(str(pedalled))
    failures = track_failures(page)
    sign_up(page, live_app.base_url)
    upload(page, live_app.base_url, midi_score)
    wait_ready(page)
    assert page.locator(".pr-pedal option").all_inner_texts() == ["model", "none", "as the reference"]
    assert page.locator(".pr-pedal option[value=reference]").is_disabled()    # no reference yet
    page.set_input_files(".pr-ref-file", str(pedalled))
    page.click(".pr-ref-upload")
    page.wait_for_selector(".pr-ref", timeout=120_000)
    ref_id = page.locator(".pr-ref").get_attribute("data-reference-id")
    page.select_option(".pr-reference-select", ref_id)
    page.select_option(".pr-pedal", "reference")
    page.fill(".pr-seed", "5")
    # note-level randomness 0.6: the untrained model's sampled durations are short enough for many
    # keys to be released within the seconds observed (its expected ones, the default, are long)
    page.eval_on_selector(".pr-temperature", "(el) => { el.value = '0.6'; "
                          "el.dispatchEvent(new Event('input', { bubbles: true })); }")
    click_and_follow(page)
    assert page.evaluate("__player.pedalEvents") >= 1
    # the pedal lane under the velocity plot draws the take's pedal once it is done
    page.wait_for_function("__player.plots.pedalDown > 0", timeout=120_000)
    held = peak_voices(page)
    shot(page, screenshot, "pedal")
    page.click(".pr-play")                          # pause
    page.select_option(".pr-pedal", "none")
    click_and_follow(page)
    dry = peak_voices(page)
    page.wait_for_function("__player.plots.pedalDown === 0", timeout=120_000)  # the lane of "none": empty
    controls = page.evaluate("__player.player.takes.takes.map((t) => t.controls.pedal || 'model')")
    assert controls == ["reference", "none"], controls
    rows = page.locator(".pr-takes-list li").all_inner_texts()
    assert "the reference’s pedal" in rows[0] and "no pedal" in rows[1], rows
    # with the pedal, notes sound on after their release; without it, none does
    assert held >= 5 and dry == 0, (held, dry)
    assert not failures, failures
