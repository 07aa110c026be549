"""render.loaders: every score format, content sniffing, and every bad input of issue 2."""
from __future__ import annotations

import lzma
import re

import numpy as np
import pytest

from render.errors import ScoreError
from render.loaders import load_score, sniff_format
from tests.data.corpus import BAD_INPUTS, SCORES, TINY_MIDI_NOTES, make_bad_inputs, make_good_inputs


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_good_inputs(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_musicxml_notes_markings_and_ids(good):
    s = load_score(good["musicxml"])
    n = s.notes
    assert s.format == "musicxml" and s.title == "Two Bars" and s.n_parts == 1
    assert s.warnings == []
    # ids are the MusicXML ids with the pass suffix of unfolding
    assert set(n["id"]) == {f"n{i}-1" for i in range(1, 13)} - {"n6-1"}  # n6 is a tie end
    assert np.all(np.diff(n["onset_beat"]) >= 0)
    g4 = n[n["id"] == "n4-1"][0]
    assert (g4["pitch"], g4["onset_beat"], g4["duration_beat"]) == (79, 2.0, 3.0)  # tie merged
    grace = n[n["is_grace"]]
    assert list(grace["id"]) == ["n1-1"] and grace["duration_beat"][0] == 0
    assert set(n["staff"][n["pitch"] < 60]) == {2}
    assert s.written_tempo_bpm == 120
    assert list(n["velocity_written"][n["onset_beat"] < 4]) == [49] * 5  # p
    assert set(n["velocity_written"][n["onset_beat"] >= 4]) == {96}  # f
    assert s.time_signatures() == [{"onset_beat": 0.0, "numerator": 4, "denominator": 4}]


def test_unfold_false_keeps_written_ids(good):
    s = load_score(good["musicxml"], unfold=False)
    assert "n2" in set(s.notes["id"])


def test_repeat_unfolds_with_pass_suffixes(tmp_path):
    xml = (SCORES / "two_bars.musicxml").read_text()
    xml = xml.replace('<bar-style>light-heavy</bar-style>',
                      '<bar-style>light-heavy</bar-style><repeat direction="backward"/>')
    path = tmp_path / "repeat.musicxml"
    path.write_text(xml)
    s = load_score(path)
    assert s.n_notes == 22
    assert {"n2-1", "n2-2", "n9-2"} <= set(s.notes["id"])
    assert s.duration_beat == 16
    assert load_score(path, unfold=False).n_notes == 11
    with pytest.raises(ScoreError, match="with its repeats played, over the limit of 20"):
        load_score(path, max_notes=20)


@pytest.mark.parametrize("key, fmt, n_notes", [
    ("mxl", "mxl", 11), ("mxl_no_container", "mxl", 11), ("mei", "mei", 7), ("kern", "kern", 7),
    ("midi", "midi", 7), ("midi_named_xml", "midi", 7), ("midi_with_drums", "midi", 7)])
def test_every_format_loads(good, key, fmt, n_notes):
    s = load_score(good[key])
    assert s.format == fmt and s.n_notes == n_notes


def test_mei_and_kern_agree(good):
    mei, kern = load_score(good["mei"]), load_score(good["kern"])
    for s in (mei, kern):
        assert s.time_signatures()[0]["numerator"] == 3
        assert s.key_signatures()[0]["fifths"] == 1
    for f in ("pitch", "onset_beat", "duration_beat"):
        assert np.array_equal(mei.notes[f], kern.notes[f])
    assert list(kern.notes["pitch"]) == [43, 67, 71, 74, 50, 66, 72]
    assert kern.title == "Two Bars Kern"
    assert mei.title in ("Two Bars MEI", "two_bars")  # partitura may not read MEI titles


def test_staff_group_without_symbol_reads(tmp_path):
    """partitura's MEI reader needs <grpSym symbol>: render.meiprep supplies one (issue 12)."""
    mei = tmp_path / "no_grpsym.mei"
    mei.write_text((SCORES / "two_bars.mei").read_text().replace('<grpSym symbol="brace"/>', ""))
    s = load_score(mei)
    assert s.format == "mei" and list(s.notes["pitch"]) == [43, 67, 71, 74, 50, 66, 72]
    assert not any("KeyError" in w for w in s.warnings)


def test_midi_reads_as_quantised_score(good):
    s = load_score(good["midi"])
    want = sorted((p, float(on), float(d)) for p, on, d, _ in TINY_MIDI_NOTES)
    got = sorted(zip(s.notes["pitch"].tolist(), s.notes["onset_beat"].tolist(),
                     s.notes["duration_beat"].tolist()))
    assert got == want
    assert s.written_tempo_bpm == 90  # rounded: MIDI stores microseconds per beat
    assert s.time_signatures()[0]["numerator"] == 3


def test_drums_are_left_out_with_a_warning(good):
    s = load_score(good["midi_with_drums"])
    assert 36 not in s.notes["pitch"] and 38 not in s.notes["pitch"]
    assert any("drum" in w for w in s.warnings)


def test_name_is_used_in_errors_and_title(bad, good):
    with pytest.raises(ScoreError) as err:
        load_score(bad["empty.musicxml"], name="My Upload.xml")
    assert str(err.value).startswith("My Upload.xml: ")
    assert load_score(good["midi"], name="Nocturne.mid").title == "Nocturne"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_one_line_score_error(bad, name):
    with pytest.raises(ScoreError) as err:
        load_score(bad[name])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(name + ": ")
    assert BAD_INPUTS[name] in msg
    assert err.value.path == str(bad[name])


def test_file_over_max_bytes(good):
    with pytest.raises(ScoreError, match="over the limit of 0.001 MB"):
        load_score(good["musicxml"], max_bytes=1000)


def test_score_over_max_notes(good):
    with pytest.raises(ScoreError, match="11 notes, over the limit of 10"):
        load_score(good["musicxml"], max_notes=10)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ScoreError, match="cannot read"):
        load_score(tmp_path / "nope.musicxml")
    with pytest.raises(ScoreError, match="folder"):
        load_score(tmp_path)


@pytest.mark.parametrize("head, fmt", [
    (b"MThd\x00\x00\x00\x06", "midi"), (b"PK\x03\x04rest", "mxl"),
    (b"\xef\xbb\xbf<?xml version='1.0'?>\n<!-- c -->\n<!DOCTYPE score-partwise>\n<score-partwise>",
     "musicxml"),
    ("<?xml version='1.0' encoding='UTF-16'?><score-timewise>".encode("utf-16"), "musicxml"),
    (b"<mei xmlns='http://www.music-encoding.org/ns/mei'>", "mei"),
    (b"!!!COM: x\n**kern\t**kern\n", "kern")])
def test_sniff_format(head, fmt):
    assert sniff_format(head, "whatever.dat") == fmt


# --- real files -------------------------------------------------------------------------------

@pytest.mark.data
def test_unfolded_ids_equal_match_file_ids(shared_data, tmp_path):
    """Batik's kv282_1 has repeats; its match file names every unfolded score note."""
    base = shared_data / "batik_plays_mozart"
    xml = tmp_path / "kv282_1.musicxml"
    xml.write_bytes(lzma.decompress((base / "scores/kv282_1.musicxml.xz").read_bytes()))
    match = lzma.decompress((base / "match/kv282_1.match.xz").read_bytes()).decode()
    match_ids = set(re.findall(r"^snote\(([^,]+),", match, re.M))
    s = load_score(xml)
    assert len(match_ids) == 1900
    assert set(s.notes["id"]) == match_ids
    assert s.written_tempo_bpm == 66  # Adagio


@pytest.mark.data
def test_real_score_midi(shared_data):
    path = shared_data / "nasap/Haydn/Keyboard_Sonatas/6-1/midi_score.mid"
    s = load_score(path)
    assert s.format == "midi" and s.n_notes > 1000
    assert s.written_tempo_bpm and 20 < s.written_tempo_bpm < 300
    assert np.all(s.notes["duration_beat"][~s.notes["is_grace"]] > 0)


def test_piano_midi_tracks_are_one_part(tmp_path):
    """Two piano tracks (the hands) are voices of one part: no 'parts merged' warning."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=144)
    for prog, pitch in ((0, 72), (1, 48)):
        inst = pretty_midi.Instrument(program=prog)
        inst.notes = [pretty_midi.Note(80, pitch + k, k * 0.5, k * 0.5 + 0.4) for k in range(4)]
        pm.instruments.append(inst)
    pm.write(str(tmp_path / "hands.mid"))
    s = load_score(tmp_path / "hands.mid")
    assert (s.n_parts, s.warnings, s.n_notes) == (1, [], 8)
    assert set(s.notes["staff"][s.notes["pitch"] >= 72]) == {1}  # tracks as staves
    assert set(s.notes["staff"][s.notes["pitch"] < 72]) == {2}
    assert s.written_tempo_bpm == 144
    pm.instruments[1].program = 40  # a violin
    pm.write(str(tmp_path / "duo.mid"))
    s = load_score(tmp_path / "duo.mid")
    assert s.n_parts == 2 and "played together as one piano part" in s.warnings[0]
