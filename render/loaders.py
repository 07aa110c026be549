"""Load a score file of any format a user has, recognising the format by its content.

Formats: MusicXML (``score-partwise``), compressed MusicXML (.mxl zip), MIDI (read as a
quantised score), MEI and Humdrum kern. The file extension is not trusted: a MIDI file named
``.xml`` loads as MIDI, and random bytes named ``.mid`` are refused. Recognising the format, the
text encoding and the .mxl container is render.sniff; here are the readers of each format
(partitura first, then the file repaired, then music21).

Every unusable input raises `render.errors.ScoreError` with a one-line reason naming the file,
never another exception type: empty, too large, unknown format, invalid XML, XML with
entity declarations (no XXE or entity expansion reaches a parser), an .mxl that is not a
zip, has members that escape its folder or unpacks to more than 100 MB, a score without
notes, a drum-only MIDI, a score over ``max_notes`` notes.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from render.errors import ScoreError
from render.meiprep import prepare_mei
from render.readers import quiet, read_with_music21, reason, scrub, verovio_mei
from render.sniff import decode_head, mxl_musicxml, one_line, read_head, sniff_format
from render.xmlrepair import repair_musicxml

FORMAT_NAMES = {"musicxml": "MusicXML", "mxl": "compressed MusicXML (.mxl)", "midi": "MIDI",
                "mei": "MEI", "kern": "Humdrum kern"}
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0


def load_score(path, *, unfold: bool = True, max_notes: int = 50_000,
               max_bytes: int = 20_000_000, name: str | None = None):
    """Read a score file into a `render.score.Score`.

    Parameters
    ----------
    path : str or Path
        The file. Its format is recognised from its content, not its extension.
    unfold : bool
        Unfold repeats as performers play them (ids get a pass suffix, ``n12-1``).
    max_notes : int
        Refuse scores with more notes than this (after unfolding).
    max_bytes : int
        Refuse files larger than this many bytes.
    name : str, optional
        The file's name as the user knows it (e.g. an upload's original name): used in error
        messages, as ``Score.source`` and as the title when the score has none.

    Returns
    -------
    render.score.Score

    Raises
    ------
    ScoreError
        For every file that is not a usable piano score, with a one-line reason.
    """
    path = Path(path)
    label = name or str(path)
    data = read_head(path, label, max_bytes)
    fmt = sniff_format(data, label)
    from render.score import score_from_partitura  # imports partitura lazily

    warn: list[str] = []
    first_error = None
    with quiet():
        for how, read in _readers(path, fmt, label, warn, max_notes):
            try:
                pt_score = read()
                n_written = sum(len(p.notes_tied) for p in _parts(pt_score))
                if n_written > max_notes:
                    raise ScoreError(f"the score has {n_written} notes, over the limit of "
                                     f"{max_notes}", path=label)
                score = score_from_partitura(pt_score, fmt=fmt, source=label, unfold=unfold,
                                             title=_title(pt_score, fmt, data),
                                             warnings=list(warn))
            except ScoreError:
                raise
            except (Exception, RecursionError) as exc:  # partitura's failures come in many types
                first_error = first_error or exc
                continue
            if how:
                score.warnings.append(f"read {how}: the {FORMAT_NAMES[fmt]} reader could not "
                                      "read the file as written")
            break
        else:
            raise ScoreError(scrub(reason(first_error, FORMAT_NAMES[fmt]), path, label),
                             path=label) from first_error
    if score.n_notes > max_notes:
        raise ScoreError(f"the score has {score.n_notes} notes with its repeats played, over the "
                         f"limit of {max_notes}", path=label)
    if not score.title:
        score.title = Path(label).stem
    if fmt == "midi":  # MIDI stores microseconds per beat: 143.99988 bpm was written 144
        score.tempo_marks["bpm"] = np.round(score.tempo_marks["bpm"], 2)
        score.notes["tempo_bpm"] = np.round(score.notes["tempo_bpm"], 2)
        voices, hand = np.unique(score.notes["voice"], return_inverse=True)
        if score.n_parts == 1 and len(voices) == 2 and not score.notes["staff"].any():
            score.notes["staff"] = hand + 1  # two piano tracks: the hands, as two staves
    return score


# --- reading ---------------------------------------------------------------------------------

def _readers(path: Path, fmt: str, label: str, warn: list[str], max_notes: int):
    """(how, thunk) pairs to try in turn: partitura first, then the same file repaired
    (`render.xmlrepair`), then music21 (`render.readers`). ``how`` is empty for the first."""
    import partitura as pt
    from lxml import etree

    if fmt == "midi":
        def midi():
            mid, piano_only = _read_midi(path, label, warn, max_notes)
            # piano tracks (hands) become voices of one part; other instruments stay parts
            return pt.load_score_midi(mid, part_voice_assign_mode=2 if piano_only else 0,
                                      quiet=True)
        yield "", midi
        return
    if fmt == "kern":
        if not _kern_has_notes(path):
            raise ScoreError("the score has no notes", path=label)
        yield "", lambda: pt.load_kern(str(path), force_same_part=True, quiet=True)
        yield "with music21", lambda: read_with_music21(path.read_bytes(), ".krn")
        return
    if fmt == "mei":
        try:
            data, notes = prepare_mei(path.read_bytes())
        except etree.XMLSyntaxError as exc:
            raise ScoreError(_xml_reason(exc, path), path=label) from exc
        warn.extend(notes)
        yield "", lambda: _load_mei_bytes(verovio_mei(data))
        yield "with music21", lambda: read_with_music21(data, ".mei")
        return
    xml = path.read_bytes() if fmt == "musicxml" else mxl_musicxml(path, label)
    yield "", lambda: pt.load_musicxml(io.BytesIO(xml), quiet=True)
    try:
        fixed, notes = repair_musicxml(xml)
    except etree.XMLSyntaxError as exc:
        raise ScoreError(_xml_reason(exc, path), path=label) from exc
    if fixed is not xml:
        def repaired():
            warn.extend(notes)
            return pt.load_musicxml(io.BytesIO(fixed), quiet=True)
        yield "after repairs", repaired
    yield "with music21", lambda: read_with_music21(fixed, ".musicxml")


def _load_mei_bytes(data: bytes):
    """partitura's MEI reader wants a file name: a private temporary copy."""
    import tempfile

    import partitura as pt

    with tempfile.TemporaryDirectory(prefix="render-mei-") as tmp:
        src = Path(tmp) / "score.mei"
        src.write_bytes(data)
        return pt.load_mei(str(src), quiet=True)


def _xml_reason(exc, path: Path) -> str:
    """'invalid XML: ...' with the line, never the (server-side) file name."""
    msg = getattr(exc, "msg", None) or str(exc)
    msg = re.sub(r"\s*\([^()]*, line \d+\)\s*$", "", " ".join(msg.split()))
    if getattr(exc, "lineno", None) and "line" not in msg:
        msg += f", line {exc.lineno}"
    return scrub(f"invalid XML: {msg}", path)


_KERN_NOTE = re.compile(r"^[\[({&]*\d+\.*[a-gA-G]+")


def _kern_has_notes(path: Path) -> bool:
    """Whether any data token of a Humdrum file is a kern note (duration then pitch letters)."""
    for line in path.read_text(errors="replace").splitlines():
        if line[:1] in ("*", "!", "=") or not line.strip():
            continue
        if any(_KERN_NOTE.match(tok) for field in line.split("\t") for tok in field.split()):
            return True
    return False


def _read_midi(path: Path, label: str, warn: list[str], max_notes: int):
    """(mido.MidiFile without drum notes, whether every program is a piano's); ScoreError
    when nothing pitched is left."""
    import mido

    try:
        mid = mido.MidiFile(str(path), clip=True)
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError ...
        raise ScoreError(f"invalid MIDI file ({one_line(exc)})", path=label) from exc
    n_drum = n_other = 0
    programs = set()
    for track in mid.tracks:
        for msg in track:
            if msg.type == "program_change" and msg.channel != DRUM_CHANNEL:
                programs.add(msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                if msg.channel == DRUM_CHANNEL:
                    n_drum += 1
                else:
                    n_other += 1
    if n_other == 0:
        if n_drum:
            raise ScoreError("no piano notes: the MIDI file holds only drums (channel 10)",
                             path=label)
        raise ScoreError("the MIDI file has no notes", path=label)
    if n_other > max_notes:  # cheap to know before partitura spends seconds on it
        raise ScoreError(f"the score has {n_other} notes, over the limit of {max_notes}",
                         path=label)
    if n_drum:
        for track in mid.tracks:
            kept, carry = [], 0
            for msg in track:
                if msg.type in ("note_on", "note_off") and msg.channel == DRUM_CHANNEL:
                    carry += msg.time
                    continue
                kept.append(msg.copy(time=msg.time + carry))
                carry = 0
            track[:] = kept
        warn.append(f"{n_drum} drum notes (MIDI channel 10) were left out")
    return mid, programs <= set(range(8))  # General MIDI 1-8: pianos


# --- helpers ---------------------------------------------------------------------------------

def _title(pt_score, fmt: str, head: bytes) -> str:
    parts = [getattr(pt_score, a, None) for a in ("title", "work_title", "movement_title")]
    if fmt == "kern":  # partitura does not read Humdrum reference records
        m = re.search(r"^!!!OTL[^:]*:[ \t]*(.+?)\s*$", decode_head(head) or "", re.M)
        parts.append(m.group(1) if m else None)
    return next((str(p).strip() for p in parts if p and str(p).strip()), "")


def _parts(pt_score):
    import partitura as pt

    if isinstance(pt_score, pt.score.Score):
        return list(pt_score.parts)
    return list(pt.score.iter_parts(pt_score))
