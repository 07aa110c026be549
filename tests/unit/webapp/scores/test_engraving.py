"""webapp.scores.engraving: MEI pitches and the score-note -> Verovio-element matching."""
import numpy as np

from render.score import NOTE_DTYPE
from webapp.scores.engraving import match_notes, mei_pitches

MEI = """<?xml version="1.0"?><mei xmlns="http://www.music-encoding.org/ns/mei"><music><body><mdiv>
<score><section><measure><staff><layer>
<note xml:id="a" pname="c" oct="4"/><note xml:id="b" pname="f" oct="4" accid.ges="s"/>
<note xml:id="c" pname="b" oct="3"><accid accid="f"/></note>
<note xml:id="d" pname="e" oct="5" accid="ff"/>
<rest xml:id="r"/><note xml:id="e"/>
</layer></staff></measure></section></score></mdiv></body></music></mei>"""


def test_mei_pitches_reads_written_and_implied_accidentals():
    assert mei_pitches(MEI) == {"a": 60, "b": 66, "c": 58, "d": 74}


def _notes(rows):
    n = np.zeros(len(rows), NOTE_DTYPE)
    for k, (nid, onset, pitch) in enumerate(rows):
        n[k]["id"], n[k]["onset_beat"], n[k]["pitch"] = nid, onset, pitch
    return n


def test_match_follows_repeats_back_to_the_written_element():
    # n1 and n2 are played twice (a repeat): Verovio's second pass has -rend ids, already
    # stripped by the caller to the written element id.
    notes = _notes([("n1-1", 0, 60), ("n2-1", 1, 62), ("n1-2", 2, 60), ("n2-2", 3, 62),
                    ("n3-1", 4, 64)])
    vrv = [(0.0, 60, "va"), (1.0, 62, "vb"), (2.0, 60, "va"), (3.0, 62, "vb"), (4.0, 64, "vc")]
    assert match_notes(notes, vrv) == {"n1": "va", "n2": "vb", "n3": "vc"}


def test_match_takes_chords_by_pitch_and_tolerates_small_offsets():
    notes = _notes([("g1", 0.0, 67), ("c1", 1.0, 60), ("e1", 1.0, 64)])
    vrv = [(0.05, 67, "grace"), (1.0, 64, "ve"), (1.0, 60, "vc")]
    assert match_notes(notes, vrv) == {"g1": "grace", "c1": "vc", "e1": "ve"}


def test_unmatched_notes_are_left_out_not_guessed():
    notes = _notes([("x1", 0.0, 60), ("x2", 10.0, 61)])
    assert match_notes(notes, [(0.0, 60, "v1"), (3.0, 61, "far")]) == {"x1": "v1"}
