"""Rewrite valid MusicXML that partitura's reader cannot take into an equivalent it can.

`repair_musicxml` is the loader's second try for a MusicXML score that partitura failed on: it
changes only what that reader trips over, each change named in the returned warnings.

- Unpitched (percussion) notes beside pitched ones (a drum part next to a piano part): a drum
  note becomes a rest of the same duration, drum notes inside chords are dropped.
- Microtonal ``<alter>`` values (``-0.5``) are rounded to semitones; accidental names the reader
  does not know (``quarter-flat``, ``slash-sharp``) are removed (``<alter>`` gives the pitch).
- Fingerings without a finger number (empty, ``something``) are removed.
- Church modes in key signatures: ionian is major, aeolian minor, other modes are left out.
- More than three augmentation dots on a note are cut to three (``<duration>`` gives the length).
"""
from __future__ import annotations

import re

KNOWN_ACCIDENTALS = {"sharp", "natural", "flat", "double-sharp", "double-flat",
                     "sharp-sharp", "flat-flat", "natural-sharp", "natural-flat"}
KNOWN_MODES = {"major", "minor"}
_MODE_AS = {"ionian": "major", "aeolian": "minor"}
MAX_DOTS = 3


def repair_musicxml(xml: bytes) -> tuple[bytes, list[str]]:
    """MusicXML bytes with the changes above, and one warning per kind of change.

    Parameters
    ----------
    xml : bytes
        A MusicXML document (``score-partwise`` or ``score-timewise``), entity-free.

    Returns
    -------
    xml : bytes
        The repaired document (the input itself when nothing needed a change).
    warnings : list of str

    Raises
    ------
    lxml.etree.XMLSyntaxError
        When ``xml`` is not well-formed.
    """
    from lxml import etree

    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True,
                                                 huge_tree=False))
    warnings = []
    n = _drop_unpitched(root)
    if n:
        warnings.append(f"{n} unpitched (percussion) notes were left out")
    n = _round_microtones(root)
    if n:
        warnings.append(f"{n} microtonal alterations were rounded to semitones")
    n_fix = _remove(root, ".//fingering", lambda e: not re.search(r"\d", e.text or ""))
    n_fix += _fix_modes(root)
    n_fix += _cut_dots(root)
    if not (warnings or n_fix):
        return xml, []
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), warnings


def _drop_unpitched(root) -> int:
    """Unpitched notes: a chord's members go, a lone note (or a chord of them) becomes a rest."""
    from lxml import etree

    count = 0
    parents = {id(e.getparent()): e.getparent() for e in root.iter("note")}
    for measure in parents.values():  # a measure (or a timewise part) in document order
        notes = [e for e in measure if e.tag == "note"]
        groups, cur = [], []
        for note in notes:
            if note.find("chord") is not None and cur:
                cur.append(note)
            else:
                cur = [note]
                groups.append(cur)
        for group in groups:
            drums = [e for e in group if e.find("unpitched") is not None]
            if not drums:
                continue
            count += len(drums)
            kept = [e for e in group if e.find("unpitched") is None]
            head = group[0]
            if kept:  # a pitched chord member takes the head's place
                for e in drums:
                    e.getparent().remove(e)
                if head in drums:
                    chord = kept[0].find("chord")
                    if chord is not None:
                        kept[0].remove(chord)
                continue
            for e in drums[1:]:
                e.getparent().remove(e)
            unp = head.find("unpitched")
            rest = etree.Element("rest")
            rest.tail = unp.tail
            head.replace(unp, rest)
            for tag in ("notehead", "stem", "beam", "tie", "instrument"):
                for e in head.findall(tag):
                    head.remove(e)
            notations = head.find("notations")
            if notations is not None:
                head.remove(notations)
    return count


def _round_microtones(root) -> int:
    count = 0
    for alter in root.iter("alter"):
        try:
            value = float((alter.text or "").strip())
        except ValueError:
            continue
        if value != int(value):
            alter.text = str(int(round(value)))
            count += 1
    for acc in list(root.iter("accidental")):
        if (acc.text or "").strip() not in KNOWN_ACCIDENTALS:
            acc.getparent().remove(acc)
    return count


def _fix_modes(root) -> int:
    count = 0
    for mode in list(root.iter("mode")):
        if mode.getparent() is None or mode.getparent().tag != "key":
            continue
        text = (mode.text or "").strip().lower()
        if text in KNOWN_MODES:
            continue
        count += 1
        if text in _MODE_AS:
            mode.text = _MODE_AS[text]
        else:
            mode.getparent().remove(mode)
    return count


def _cut_dots(root) -> int:
    count = 0
    for note in root.iter("note"):
        dots = note.findall("dot")
        for e in dots[MAX_DOTS:]:
            note.remove(e)
            count += 1
    return count


def _remove(root, path: str, pred) -> int:
    hits = [e for e in root.iterfind(path) if pred(e)]
    for e in hits:
        e.getparent().remove(e)
    return len(hits)
