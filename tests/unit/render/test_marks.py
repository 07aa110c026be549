"""Score markings per note (render.marks): read by partitura, kept through unfolded repeats."""
from __future__ import annotations

import numpy as np
import pytest

from render.loaders import load_score
from render.marks import MARK_CLASSES, MARK_DTYPE, empty_marks, marks_by_base_id
from render.score import Score
from tests.data.corpus import TINY_MIDI_NOTES, TWO_BARS, make_midi

HEAD = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN" "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
  <part id="P1">
"""
ATTRIBUTES = """<attributes><divisions>2</divisions><key><fifths>0</fifths></key>
<time><beats>4</beats><beat-type>4</beat-type></time><staves>2</staves>
<clef number="1"><sign>G</sign><line>2</line></clef><clef number="2"><sign>F</sign><line>4</line></clef></attributes>
"""


def note(nid, step, octave, dur, kind, *, staff=1, voice=1, notations=""):
    n = f"<notations>{notations}</notations>" if notations else ""
    return (f'<note id="{nid}"><pitch><step>{step}</step><octave>{octave}</octave></pitch><duration>{dur}</duration>'
            f"<voice>{voice}</voice><type>{kind}</type><staff>{staff}</staff>{n}</note>\n")


def direction(inner):
    return f'<direction placement="above"><direction-type>{inner}</direction-type><staff>1</staff></direction>\n'


def artic(name):
    return f"<articulations><{name}/></articulations>"


def measure(number, body, *, first=False, right="", left=""):
    return f'<measure number="{number}">{left}{ATTRIBUTES if first else ""}{body}{right}</measure>\n'


def write(path, *measures):
    path.write_text(HEAD + "".join(measures) + "</part></score-partwise>\n")
    return path


BAR1 = (direction("<metronome><beat-unit>quarter</beat-unit><per-minute>120</per-minute></metronome>")
        + note("n1", "C", 5, 2, "quarter", notations='<slur type="start" number="1"/>')
        + note("n2", "D", 5, 2, "quarter", notations=artic("staccato"))
        + note("n3", "E", 5, 2, "quarter", notations='<slur type="stop" number="1"/>')
        + direction("<dynamics><sfz/></dynamics>")
        + note("n4", "F", 5, 2, "quarter", notations=artic("accent"))
        + "<backup><duration>8</duration></backup>" + note("n5", "C", 3, 8, "whole", staff=2, voice=5))
BAR2 = (direction('<wedge type="crescendo"/>')
        + note("n6", "G", 5, 2, "quarter", notations=artic("tenuto"))
        + note("n7", "A", 5, 2, "quarter")
        + direction('<wedge type="stop"/>') + direction("<words>rit.</words>")
        + note("n8", "B", 5, 2, "quarter", notations=artic("strong-accent"))
        + note("n9", "C", 6, 2, "quarter", notations="<fermata/>")
        + "<backup><duration>8</duration></backup>"
        + note("n10", "C", 3, 4, "half", staff=2, voice=5) + note("n11", "G", 2, 4, "half", staff=2, voice=5))
FINAL = '<barline location="right"><bar-style>light-heavy</bar-style></barline>'


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """Two bars: a slur n1..n3, staccato n2, accent and sfz n4, a crescendo wedge over beats 4-6,
    tenuto n6, "rit." from beat 6, marcato n8, fermata n9, a final barline."""
    path = write(tmp_path_factory.mktemp("marks") / "marks.musicxml",
                 measure(1, BAR1, first=True), measure(2, BAR2, right=FINAL))
    return load_score(path)


def by_id(score):
    return {str(i).rsplit("-", 1)[0]: m for i, m in zip(score.notes["id"], score.marks)}


def test_marks_dtype_and_defaults():
    assert list(MARK_DTYPE.names) == list(MARK_CLASSES) == [
        "hairpin", "dyn_accent", "tempo_change", "fermata", "slur", "artic", "accent", "section_end", "pedal"]
    assert (empty_marks(3).tolist() == [(0,) * 9] * 3) and empty_marks(3).dtype == MARK_DTYPE


def test_each_mark_on_its_notes(marked):
    m = by_id(marked)
    assert marked.marks.dtype == MARK_DTYPE and len(marked.marks) == marked.n_notes == 11
    for k, classes in MARK_CLASSES.items():
        assert marked.marks[k].min() >= 0 and marked.marks[k].max() < classes, k

    def where(field, value=None):
        return {i for i, r in m.items() if (r[field] > 0 if value is None else r[field] == value)}

    assert where("artic") == {"n2", "n6"} and m["n2"]["artic"] == 1 and m["n6"]["artic"] == 3  # staccato, tenuto
    assert where("accent", 1) == {"n4"} and where("accent", 2) == {"n8"}                        # accent, marcato
    assert where("dyn_accent") == {"n4"}                                                        # sfz
    assert where("hairpin", 1) == {"n6", "n7", "n10"} and where("hairpin", 2) == set()         # cresc. beats 4-6
    assert where("tempo_change", 1) == {"n8", "n9", "n11"} and where("tempo_change", 2) == set()  # rit. from 6
    assert where("fermata") == {"n9"}
    assert where("section_end") == {"n6", "n7", "n8", "n9", "n10", "n11"}                     # the final bar
    assert where("slur", 1) >= {"n1"} and "n2" in where("slur", 2)
    assert all(m[i]["slur"] == 0 for i in ("n6", "n7", "n8", "n9"))


def test_a_slur_ends_on_its_last_note(marked):
    """The slur stop is on n3 (beat 2); n4 (beat 3) is after the slur."""
    m = by_id(marked)
    assert [int(m[i]["slur"]) for i in ("n1", "n2", "n3", "n4")] == [1, 2, 3, 0]


def test_other_markings_and_a_fermata_on_a_rest(tmp_path):
    rest = ('<note><rest/><duration>2</duration><voice>1</voice><type>quarter</type><staff>1</staff>'
            '<notations><fermata/></notations></note>\n')
    bar1 = (direction('<wedge type="diminuendo"/>') + note("n1", "C", 5, 4, "half") + direction('<wedge type="stop"/>')
            + rest + direction("<words>accel.</words>") + note("n2", "D", 5, 2, "quarter"))
    bar2 = direction("<dynamics><fp/></dynamics>") + note("n3", "E", 5, 8, "whole", notations=artic("staccatissimo"))
    bar3 = direction("<words>a tempo</words>") + note("n4", "F", 5, 8, "whole")
    s = load_score(write(tmp_path / "more.musicxml", measure(1, bar1, first=True),
                         measure(2, bar2,
                                 right='<barline location="right"><bar-style>light-light</bar-style></barline>'),
                         measure(3, bar3)))
    m = by_id(s)
    assert m["n1"]["hairpin"] == 2 and m["n2"]["hairpin"] == 0                    # diminuendo
    assert m["n2"]["tempo_change"] == 2 and m["n3"]["tempo_change"] == 2           # accel. (4 beats without an end)
    assert m["n4"]["tempo_change"] == 0
    assert m["n3"]["dyn_accent"] == 1 and m["n3"]["artic"] == 2                   # fp, staccatissimo
    assert m["n3"]["section_end"] == 1 and m["n4"]["section_end"] == 0           # double bar after bar 2
    # a fermata on a rest holds the note struck before it (n1, sounding up to the rest)
    assert [int(m[i]["fermata"]) for i in ("n1", "n2", "n3", "n4")] == [1, 0, 0, 0]


def test_a_marked_sustain_pedal_its_presses_and_a_change(tmp_path):
    """Ped. at n1 held to beat 3, a change (stop then start) at n3, * before n4's bar ends; n5
    in the next bar is unpedalled."""
    ped = lambda kind: direction(f'<pedal type="{kind}" line="yes"/>')  # noqa: E731
    bar1 = (ped("start") + note("n1", "C", 5, 2, "quarter") + note("n2", "D", 5, 2, "quarter")
            + ped("stop") + ped("start") + note("n3", "E", 5, 2, "quarter")
            + note("n4", "F", 5, 1, "eighth") + ped("stop") + note("n6", "G", 5, 1, "eighth"))
    bar2 = note("n5", "G", 5, 8, "whole")
    s = load_score(write(tmp_path / "pedal.musicxml", measure(1, bar1, first=True), measure(2, bar2)))
    m = by_id(s)
    assert [int(m[i]["pedal"]) for i in ("n1", "n2", "n3", "n4", "n6", "n5")] == [2, 1, 2, 1, 0, 0]


def test_repeats_keep_marks_on_both_passes(tmp_path):
    left = '<barline location="left"><bar-style>heavy-light</bar-style><repeat direction="forward"/></barline>'
    right = '<barline location="right"><bar-style>light-heavy</bar-style><repeat direction="backward"/></barline>'
    path = write(tmp_path / "repeat.musicxml", measure(1, BAR1, first=True, left=left, right=right),
                 measure(2, BAR2, right=FINAL))
    s = load_score(path)
    assert s.n_notes == 16
    ids = [str(i) for i in s.notes["id"]]
    row = dict(zip(ids, s.marks))
    for base in ("n1", "n2", "n3", "n4", "n5"):
        assert row[f"{base}-1"] == row[f"{base}-2"], base
    assert row["n2-2"]["artic"] == 1 and row["n4-2"]["accent"] == 1 and row["n4-2"]["dyn_accent"] == 1
    assert row["n1-2"]["slur"] == 1 and row["n9-1"]["fermata"] == 1
    assert row["n2-1"]["section_end"] == row["n2-2"]["section_end"] == 1           # the repeat bar ends a section
    # the markings equal those of the score as written, note by note
    written = load_score(path, unfold=False)
    table = dict(zip(written.notes["id"].tolist(), written.marks.tolist()))
    assert all(table[i.rsplit("-", 1)[0]] == r for i, r in zip(ids, s.marks.tolist()))


def test_note_ids_with_dashes_keep_their_marks(tmp_path, marked):
    """Ids as written may contain '-' (MEI and many MusicXML exporters do): only the pass suffix
    that unfolding adds may be taken off."""
    path = tmp_path / "dashes.musicxml"
    write(path, measure(1, BAR1, first=True), measure(2, BAR2, right=FINAL))
    path.write_text(path.read_text().replace('id="n', 'id="note-'))
    s = load_score(path)
    assert s.notes["id"][0].startswith("note-")
    assert s.marks.tolist() == marked.marks.tolist()


def test_a_midi_score_has_no_marks(tmp_path):
    s = load_score(make_midi(tmp_path / "tiny.mid", TINY_MIDI_NOTES))
    assert s.marks.dtype == MARK_DTYPE and len(s.marks) == s.n_notes == len(TINY_MIDI_NOTES)
    assert not any(s.marks[k].any() for k in MARK_DTYPE.names)


def test_two_bars_final_barline():
    s = load_score(TWO_BARS)
    assert np.array_equal(s.marks["section_end"] == 1, s.notes["onset_beat"] >= 4)
    assert not s.marks["fermata"].any() and not s.marks["slur"].any()


def test_marks_by_base_id():
    marks = empty_marks(2)
    marks["artic"] = [1, 3]
    marks["slur"] = [1, 0]
    out = marks_by_base_id(np.array(["n2-1", "n1-1", "n9-1", "n1-2"]), np.array(["n1", "n2"]), marks)
    assert out["artic"].tolist() == [3, 1, 0, 1] and out["slur"].tolist() == [0, 1, 0, 1]
    assert out.dtype == MARK_DTYPE


def test_score_validates_its_marks():
    s = load_score(TWO_BARS)
    plain = Score(notes=s.notes)
    assert plain.marks.dtype == MARK_DTYPE and not any(plain.marks[k].any() for k in MARK_DTYPE.names)
    with pytest.raises(ValueError, match="MARK_DTYPE"):
        Score(notes=s.notes, marks=empty_marks(s.n_notes - 1))
    with pytest.raises(ValueError, match="MARK_DTYPE"):
        Score(notes=s.notes, marks=np.zeros(s.n_notes, [("slur", "i1")]))
