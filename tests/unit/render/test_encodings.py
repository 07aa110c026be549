"""render.loaders on valid encodings partitura alone cannot read (issue 12, defect 6).

Each fixture in tests/data/scores/encodings is one class of real-world file that failed with a
raw Python exception (or was read wrong) before: it now reads, or is refused with one line that
names no exception type and no server-side file name.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from render.errors import ScoreError
from render.loaders import load_score
from render.readers import reason
from tests.data.corpus import REPO_ROOT, SCORES, TWO_BARS

ENC = SCORES / "encodings"
TWO_BARS_PITCHES = [43, 67, 71, 74, 50, 66, 72]
RAW = ("Error", "Exception", "StopIteration", "Traceback", "/tmp/", "object has no attribute")


@pytest.mark.parametrize("name", ["editorial.mei", "non_ncname_ids.mei", "staffgrp_no_symbol.mei",
                                  "two_sections.mei", "mei_corpus.mei"])
def test_mei_encodings_read_as_the_plain_file(name):
    s = load_score(ENC / name)
    assert s.format == "mei" and list(s.notes["pitch"]) == TWO_BARS_PITCHES
    assert not any("music21" in w for w in s.warnings)  # partitura read it (music21 lost notes)


def test_mei_corpus_reads_its_first_piece_with_a_warning():
    s = load_score(ENC / "mei_corpus.mei")
    assert s.warnings == ["the MEI corpus holds 2 pieces; the first was read"]


def test_editorial_markup_keeps_lemma_and_correction():
    s = load_score(ENC / "editorial.mei")
    assert 69 not in s.notes["pitch"] and 76 not in s.notes["pitch"]  # <rdg> and <sic> left out


def test_nested_tuplets_get_the_product_ratio():
    n = load_score(ENC / "nested_tuplets.mei").notes
    inner = n[np.isin(n["pitch"], [74, 76, 77, 79, 81])]
    assert np.allclose(inner["onset_beat"], [2, 2 + 1 / 3, 2 + 4 / 9, 2 + 5 / 9, 2 + 2 / 3], atol=1e-6)
    assert np.isclose(inner["duration_beat"][-1], 1 / 3, atol=1e-6)


def test_tie_placed_by_time_stamps_merges_the_notes():
    n = load_score(ENC / "tstamp_tie.mei").notes
    g2 = n[n["pitch"] == 43]
    assert len(n) == 6 and len(g2) == 1 and g2["duration_beat"][0] == 6


def test_tie_attributes_merge_the_notes(tmp_path):
    mei = (SCORES / "two_bars.mei").read_text()
    mei = mei.replace('<note xml:id="m4" dur="2" dots="1" oct="2" pname="g"/>',
                      '<note xml:id="m4" dur="2" dots="1" oct="2" pname="g" tie="i"/>')
    mei = mei.replace('<note xml:id="m8" dur="2" dots="1" oct="3" pname="d"/>',
                      '<note xml:id="m8" dur="2" dots="1" oct="2" pname="g" tie="t"/>')
    (tmp_path / "tie_attr.mei").write_text(mei)
    n = load_score(tmp_path / "tie_attr.mei").notes
    assert len(n) == 6 and n[n["pitch"] == 43]["duration_beat"][0] == 6


def test_drum_part_beside_piano_part():
    s = load_score(ENC / "drums_beside_piano.musicxml")
    assert list(s.notes["pitch"]) == [60, 64]
    assert "3 unpitched (percussion) notes were left out" in s.warnings


@pytest.mark.parametrize("change, warning", [
    (("<step>F</step><octave>5</octave></pitch><duration>4</duration><voice>1</voice><type>quarter</type>",
      "<step>F</step><alter>0.5</alter><octave>5</octave></pitch><duration>4</duration><voice>1</voice>"
      "<type>quarter</type><accidental>quarter-sharp</accidental>"), "microtonal"),
    (("<notations>", "<notations><technical><fingering>thumb</fingering></technical>"), None),
    (("<fifths>0</fifths>", "<fifths>0</fifths><mode>dorian</mode>"), None),
    (("<type>quarter</type>", "<type>quarter</type><dot/><dot/><dot/><dot/>"), None),
])
def test_musicxml_repairs(tmp_path, change, warning):
    xml = TWO_BARS.read_text()
    assert change[0] in xml
    path = tmp_path / "x.musicxml"
    path.write_text(xml.replace(change[0], change[1]))
    s = load_score(path)
    assert s.n_notes == 11
    assert warning is None or any(warning in w for w in s.warnings)


def test_mxl_with_an_unusual_container(tmp_path):
    path = tmp_path / "odd.mxl"
    container = ('<?xml version="1.0"?><container><rootfiles>'
                 '<rootfile full-path="cover.pdf" media-type="application/pdf"/>'
                 '<rootfile full-path="./My%20Score.XML"/></rootfiles></container>')
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("META-INF/container.xml", container)
        zf.writestr("cover.pdf", b"%PDF-1.4")
        zf.writestr("My Score.xml", TWO_BARS.read_bytes())
    assert load_score(path).n_notes == 11


def test_truncated_xml_message_has_no_server_file_name(tmp_path):
    path = tmp_path / "upload-k3j2.tmp"
    path.write_bytes(TWO_BARS.read_bytes()[:900])
    with pytest.raises(ScoreError) as err:
        load_score(path, name="sonata.musicxml")
    assert "invalid XML" in err.value.reason and "upload-k3j2" not in str(err.value)
    mei = tmp_path / "upload-x9.tmp"
    mei.write_bytes((SCORES / "two_bars.mei").read_bytes()[:700])
    with pytest.raises(ScoreError) as err:
        load_score(mei, name="a.mei")
    assert "upload-x9" not in str(err.value)


@pytest.mark.parametrize("exc", [KeyError("symbol"), IndexError("list index out of range"),
                                 StopIteration(), AttributeError("'UnpitchedNote' object has no "
                                                                 "attribute 'is_grace_chord'")])
def test_internal_failures_read_as_a_sentence(exc):
    msg = reason(exc, "MEI")
    assert msg.startswith("could not read the MEI file: ") and "\n" not in msg
    assert not any(r in msg for r in RAW) and "symbol" not in msg


def test_unsupported_mei_element_is_named():
    exc = Exception("Tag {http://www.music-encoding.org/ns/mei}fing not supported")
    assert reason(exc, "MEI") == "could not read the MEI file: the MEI element <fing> is not supported"


def test_cli_prints_nothing_but_json_for_mei():
    proc = subprocess.run([sys.executable, "-m", "render", "inspect", str(ENC / "editorial.mei")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
