"""Test inputs made on demand: tiny good scores and a corpus of bad ones.

The hand-written scores live in ``tests/data/scores``; what is binary or large (MIDI, .mxl,
zip bombs, random bytes) is made here, deterministically, so nothing big sits in git.
``python -m tests.data.corpus OUT_DIR`` writes the whole corpus to a folder for manual use.
"""
from __future__ import annotations

import random
import sys
import zipfile
from pathlib import Path

SCORES = Path(__file__).parent / "scores"
REPO_ROOT = Path(__file__).resolve().parents[2]
TWO_BARS = SCORES / "two_bars.musicxml"

CONTAINER = ('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<container><rootfiles><rootfile full-path="{name}" '
             'media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>\n')

# file name -> (what the error message must say), for every bad input of issue 2
BAD_INPUTS = {
    "empty.musicxml": "empty",
    "random.mid": "not a score file",
    "random.musicxml": "not a score file",
    "random.mxl": "not a zip archive",
    "truncated.musicxml": "invalid XML",
    "invalid.musicxml": "invalid XML",
    "truncated.mei": "invalid XML",
    "page.xml": "neither MusicXML nor MEI",
    "entities.musicxml": "entity declarations are not allowed",
    "not_zip.mxl": "not a zip archive",
    "broken_zip.mxl": "not a valid zip archive",
    "zip_slip.mxl": "escapes the archive folder",
    "zip_absolute.mxl": "escapes the archive folder",
    "zip_bomb.mxl": "unpacks to",
    "no_score.mxl": "holds no MusicXML score",
    "no_notes.musicxml": "no notes",
    "drums.mid": "only drums",
    "silent.mid": "no notes",
    "truncated.mid": "invalid MIDI",
    "too_many_notes.mid": "over the limit of 50000",
    "bad.krn": "no notes",
}


def make_mxl(out: Path, xml: bytes, *, member: str = "score.musicxml",
             container: bool = True) -> Path:
    """Zip MusicXML text into an .mxl archive (with META-INF/container.xml)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/vnd.recordare.musicxml")
        if container:
            zf.writestr("META-INF/container.xml", CONTAINER.format(name=member))
        zf.writestr(member, xml)
    return out


def make_midi(out: Path, notes, *, tempo_bpm: float = 90.0, ts=(3, 4), drum_notes=()) -> Path:
    """A quantised score MIDI: notes as (pitch, onset_beat, duration_beat, velocity)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(ts[0], ts[1], 0.0))
    spb = 60.0 / tempo_bpm
    piano = pretty_midi.Instrument(program=0, name="Piano")
    for pitch, on, dur, vel in notes:
        piano.notes.append(pretty_midi.Note(vel, pitch, on * spb, (on + dur) * spb))
    if notes:
        pm.instruments.append(piano)
    if drum_notes:
        drums = pretty_midi.Instrument(program=0, is_drum=True, name="Drums")
        for pitch, on, dur, vel in drum_notes:
            drums.notes.append(pretty_midi.Note(vel, pitch, on * spb, (on + dur) * spb))
        pm.instruments.append(drums)
    pm.write(str(out))
    return out


TINY_MIDI_NOTES = [(60, 0, 1, 80), (64, 1, 1, 80), (67, 2, 1, 80), (48, 0, 3, 70),
                   (72, 3, 2, 90), (55, 3, 3, 70), (71, 5, 1, 90)]


def make_good_inputs(folder: Path) -> dict[str, Path]:
    """Good scores in every format: the committed ones plus MIDI and .mxl made here."""
    folder.mkdir(parents=True, exist_ok=True)
    xml = TWO_BARS.read_bytes()
    out = {
        "musicxml": TWO_BARS,
        "mei": SCORES / "two_bars.mei",
        "kern": SCORES / "two_bars.krn",
        "mxl": make_mxl(folder / "two_bars.mxl", xml),
        "mxl_no_container": make_mxl(folder / "bare.mxl", xml, member="two_bars.xml",
                                     container=False),
        "midi": make_midi(folder / "tiny.mid", TINY_MIDI_NOTES),
        "midi_named_xml": make_midi(folder / "looks_like.xml", TINY_MIDI_NOTES),
        "midi_with_drums": make_midi(folder / "with_drums.mid", TINY_MIDI_NOTES,
                                     drum_notes=[(36, 0, 0.5, 100), (38, 1, 0.5, 100)]),
    }
    return out


def _many_notes_midi(n: int) -> bytes:
    """A format-0 MIDI file of ``n`` sixteenth notes, written byte by byte (fast)."""
    track = bytearray()
    for i in range(n):
        pitch = 36 + i % 60
        track += bytes([0x00, 0x90, pitch, 64, 0x78, 0x80, pitch, 0])  # delta 120 ticks
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    header += (480).to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def make_bad_inputs(folder: Path) -> dict[str, Path]:
    """Write every bad input of ``BAD_INPUTS`` into ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    xml = TWO_BARS.read_bytes()
    mei = (SCORES / "two_bars.mei").read_bytes()
    p = {name: folder / name for name in BAD_INPUTS}
    p["empty.musicxml"].write_bytes(b"")
    for name in ("random.mid", "random.musicxml", "random.mxl"):
        p[name].write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    p["truncated.musicxml"].write_bytes(xml[: len(xml) * 2 // 3])
    p["invalid.musicxml"].write_bytes(xml.replace(b"</measure>", b"</measur>", 1))
    p["truncated.mei"].write_bytes(mei[: len(mei) // 2])
    p["page.xml"].write_text("<?xml version='1.0'?><html><body>not music</body></html>")
    p["entities.musicxml"].write_bytes(xml.replace(
        b'"http://www.musicxml.org/dtds/partwise.dtd">',
        b'"http://www.musicxml.org/dtds/partwise.dtd" [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    ).replace(b"<work-title>Two Bars</work-title>", b"<work-title>&xxe;</work-title>"))
    p["not_zip.mxl"].write_text("this is not a zip archive\n")
    good = make_mxl(folder / "_good.mxl", xml)
    p["broken_zip.mxl"].write_bytes(good.read_bytes()[:-40])  # central directory cut off
    good.unlink()
    with zipfile.ZipFile(p["zip_slip.mxl"], "w") as zf:
        zf.writestr("META-INF/container.xml", CONTAINER.format(name="../evil.musicxml"))
        zf.writestr("../evil.musicxml", xml)
    with zipfile.ZipFile(p["zip_absolute.mxl"], "w") as zf:
        zf.writestr("META-INF/container.xml", CONTAINER.format(name="score.musicxml"))
        zf.writestr("score.musicxml", xml)
        info = zipfile.ZipInfo("/tmp/evil.musicxml")
        zf.writestr(info, xml)
    with zipfile.ZipFile(p["zip_bomb.mxl"], "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("META-INF/container.xml", CONTAINER.format(name="score.musicxml"))
        with zf.open("score.musicxml", "w", force_zip64=True) as f:
            f.write(xml)
            chunk = b" " * 1_000_000
            for _ in range(101):
                f.write(chunk)
    with zipfile.ZipFile(p["no_score.mxl"], "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    rests = xml.split(b"<measure number=\"2\">")[0]
    rests = rests.replace(b"<note id=\"n1\"><grace slash=\"yes\"/>", b"<note id=\"n1\"><grace/>")
    body = rests.split(b"</attributes>")
    p["no_notes.musicxml"].write_bytes(
        body[0] + b"</attributes><note><rest/><duration>16</duration><voice>1</voice>"
        b"<type>whole</type><staff>1</staff></note></measure></part></score-partwise>\n")
    make_midi(p["drums.mid"], [], drum_notes=[(36, i, 0.5, 100) for i in range(8)])
    make_midi(p["silent.mid"], [])
    tiny = make_midi(folder / "_tiny.mid", TINY_MIDI_NOTES).read_bytes()
    p["truncated.mid"].write_bytes(tiny[: len(tiny) // 2])
    (folder / "_tiny.mid").unlink()
    p["too_many_notes.mid"].write_bytes(_many_notes_midi(50_001))
    p["bad.krn"].write_text("**kern\t**kern\n*M4/4\n=1\n4xyz\t4q!!\n*-\n")
    return p


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    for name, path in {**make_bad_inputs(out / "bad"), **make_good_inputs(out / "good")}.items():
        print(name, path)
