"""webapp.surveys.design (passages, slicing, answers, A/B scoring) and plots, without Django."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from webapp.surveys import design, plots

# 64 quarter notes at 120 bpm (0.5 s each), bars of 4 beats.
OB = np.arange(64, dtype=float)
SEC = OB * 0.5
BARS = (OB // 4) * 4
NOTES = np.zeros(64, [("pitch", "i2"), ("onset_sec", "f8"), ("duration_sec", "f8"),
                      ("velocity", "i2")])
NOTES["onset_sec"], NOTES["duration_sec"], NOTES["pitch"], NOTES["velocity"] = SEC + 3, 0.4, 60, 64


def test_passage_is_segment_long_and_starts_on_a_bar():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = design.passage(OB, SEC, BARS, segment_sec=5, rng=rng)
        assert a % 4 == 0 and b - a == 10  # 5 s at 2 beats/s
        assert b <= 64


def test_passage_by_hand_snaps_to_next_onset_and_refuses_outside():
    a, b = design.passage(OB, SEC, BARS, segment_sec=3, rng=None, start_beat=10.5)
    assert (a, b) == (11.0, 17.0)
    with pytest.raises(ValueError, match="outside the score"):
        design.passage(OB, SEC, BARS, segment_sec=3, rng=None, start_beat=100)


def test_passage_longer_than_piece_takes_the_whole_piece():
    a, b = design.passage(OB[:8], SEC[:8], BARS[:8], segment_sec=15,
                          rng=np.random.default_rng(1), piece_end_beat=8.0)
    assert (a, b) == (0.0, 8.0)


def test_two_passages_never_overlap():
    rng = np.random.default_rng(3)
    for _ in range(30):
        (a0, a1), (b0, b1) = design.two_passages(OB, SEC, BARS, segment_sec=4, rng=rng)
        assert b0 >= a1 or a0 >= b1
        assert a1 - a0 == 8 and b1 - b0 == 8


def test_two_passages_refused_when_too_short():
    with pytest.raises(ValueError, match="too short"):
        design.two_passages(OB[:12], SEC[:12], BARS[:12], segment_sec=4,
                            rng=np.random.default_rng(0))


def test_slice_rendered_same_notes_rebased_and_tail_capped():
    notes = NOTES.copy()
    notes["duration_sec"][20] = 30.0  # a note held far beyond the passage
    out = design.slice_rendered(notes, OB, 16, 24)
    assert len(out) == 8
    assert out["onset_sec"][0] == pytest.approx(design.LEAD_IN_SEC)
    end = out["onset_sec"] + out["duration_sec"]
    assert end.max() <= out["onset_sec"].max() + design.MAX_TAIL_SEC + 1e-9
    assert NOTES["duration_sec"][20] == 0.4  # input untouched


def test_slice_performed_keeps_insertions_between_aligned_notes():
    perf = NOTES.copy()[:10]
    perf["onset_sec"] = np.arange(10) * 0.6
    match = np.full(64, -1)
    match[[2, 3, 5]] = [2, 3, 6]  # note 4 not played; perf note 4, 5 are insertions
    out = design.slice_performed(perf, match, OB, 2, 6)
    assert len(out) == 5 and out["onset_sec"][0] == pytest.approx(design.LEAD_IN_SEC)
    assert len(design.slice_performed(perf, match, OB, 40, 50)) == 0


@pytest.mark.parametrize("relation,confidence,reversed_,score", [
    (1, 2, False, 2), (-1, 2, False, -2), (-1, 1, True, 1), (1, 1, True, -1), (1, 0, True, 0)])
def test_ab_signed_score(relation, confidence, reversed_, score):
    assert design.ab_signed_score(relation, confidence, reversed_) == score


def test_valid_answer_accepts_scales_and_refuses_the_rest():
    assert design.valid_answer("mos", {"naturalness": 5, "expressiveness": "1"}) == {
        "naturalness": 5, "expressiveness": 1}
    assert design.valid_answer("ab", {"relation": -1, "confidence": 0}) == {
        "relation": -1, "confidence": 0}
    bad = [({"naturalness": 6, "expressiveness": 3}, "outside the scale"),
           ({"naturalness": 0, "expressiveness": 3}, "outside the scale"),
           ({"naturalness": 3}, "missing"), ({"naturalness": 3, "expressiveness": 3, "x": 1},
                                             "unknown"),
           ({"naturalness": 2.5, "expressiveness": 3}, "whole number"),
           ({"naturalness": True, "expressiveness": 3}, "whole number"),
           ({"naturalness": "abc", "expressiveness": 3}, "whole number"), ([1, 2], "object")]
    for answers, msg in bad:
        with pytest.raises(ValueError, match=msg):
            design.valid_answer("mos", answers)
    with pytest.raises(ValueError, match="outside"):
        design.valid_answer("ab", {"relation": 0, "confidence": 1})


def test_mos_bars_svg_has_a_bar_and_whisker_per_condition_and_survives_nan():
    conds = {"deadpan": {"n": 10, "mean": 3.0, "ci_low": 2.5, "ci_high": 3.5},
             "model": {"n": 1, "mean": 4.0, "ci_low": float("nan"), "ci_high": float("nan")},
             "human": {"n": 0, "mean": float("nan"), "ci_low": float("nan"),
                       "ci_high": float("nan")}}
    svg = plots.mos_bars(conds, {"deadpan": "Deadpan <dp>"}, title="Naturalness")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}rect")) == 2 and len(root.findall(f"{ns}path")) == 1
    assert "Deadpan &lt;dp&gt;" in svg


def test_ab_histogram_counts():
    svg = plots.ab_histogram([2, 2, -1, 0, 1], title="A/B")
    root = ET.fromstring(svg)
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert titles == ["-2: 0", "-1: 1", "+0: 1", "+1: 1", "+2: 2"]
