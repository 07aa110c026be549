"""Engraving for the browser: Verovio's MEI of a score and the map from our note ids to its ids.

No Django here. The MEI is produced by the python ``verovio`` toolkit with a fixed ``xmlIdSeed``,
so its element ids are stable; the browser's Verovio loads that MEI and keeps them.

The notemap pairs each partitura base note id (``n12`` for ``n12-2``) with the id of the Verovio
note element that engraves it, by matching (onset in quarter notes, MIDI pitch) between the
unfolded score and Verovio's timemap, which follows the repeats the same way. Ids Verovio gives
to repeated passes (``abc-rend2``) are mapped back to the written element (``abc``).
"""
from __future__ import annotations

import collections
import contextlib
import inspect
import io
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
from lxml import etree

from render.meiprep import prepare_mei
from render.sniff import read_mxl

XML_ID_SEED = 1
_REND = re.compile(r"-rend\d+$")
_TOL_Q = 1e-3


def _toolkit():
    import verovio

    verovio.enableLog(verovio.LOG_OFF) if hasattr(verovio, "LOG_OFF") else None
    tk = verovio.toolkit()
    tk.setOptions({"xmlIdSeed": XML_ID_SEED})
    return tk


def verovio_input(path: str | Path, fmt: str) -> str:
    """Path of a file Verovio can load for a score of format ``fmt`` (MIDI goes via MusicXML)."""
    if fmt == "mxl":
        return _mxl_member(path)
    if fmt == "mei":  # the same rewrites as the loader (meiCorpus, ids, editorial markup ...)
        data = Path(path).read_bytes()
        fixed, _ = prepare_mei(data)
        if fixed is data:
            return str(path)
        out = tempfile.NamedTemporaryFile(suffix=".mei", delete=False)
        out.write(fixed)
        out.close()
        return out.name
    if fmt != "midi":
        return str(path)
    import partitura as pt

    part = pt.load_score_midi(str(path), quiet=True) if _accepts_quiet() else pt.load_score_midi(str(path))
    out = tempfile.NamedTemporaryFile(suffix=".musicxml", delete=False)
    out.close()
    with _silent():
        pt.save_musicxml(part, out.name)
    return out.name


def _mxl_member(path: str | Path) -> str:
    """The MusicXML inside an .mxl, unpacked to a temporary file (Verovio needs a container)."""
    _, xml = read_mxl(Path(path), str(path))
    out = tempfile.NamedTemporaryFile(suffix=".musicxml", delete=False)
    out.write(xml)
    out.close()
    return out.name


def _accepts_quiet() -> bool:
    import partitura as pt

    return "quiet" in inspect.signature(pt.load_score_midi).parameters


class _silent:
    def __enter__(self):
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))

    def __exit__(self, *exc):
        self._stack.close()


def engrave(path: str | Path, fmt: str, notes: np.ndarray, written_notes=None,
            ) -> tuple[str, dict[str, str], float]:
    """MEI text of a score file and the notemap for its (unfolded) note array.

    Parameters
    ----------
    path : str or Path
        The score file (any format render.loaders reads).
    fmt : str
        Its format as render.loaders sniffed it (musicxml, mxl, midi, mei, kern).
    notes : np.ndarray
        The score's NOTE_DTYPE array, shape (N,), unfolded as the renderer plays it.
    written_notes : callable, optional
        Returns the note array without unfolding. Called only when some notes found no element
        (partitura and Verovio unfolded the repeats differently): those are then matched
        between the score as written and Verovio's timemap without expansion.

    Returns
    -------
    mei : str
    notemap : dict
        partitura base id -> Verovio element id.
    coverage : float
        Fraction of distinct base ids that got a Verovio element, 0..1.

    Raises
    ------
    ValueError
        When Verovio cannot load the file.
    """
    tk = _toolkit()
    src = verovio_input(path, fmt)
    try:
        if not tk.loadFile(src):
            raise ValueError("Verovio could not read the score")
        mei = tk.getMEI()
        vrv = _verovio_onsets(tk, tk.renderToTimemap(), mei)
        notemap = match_notes(notes, vrv)
        base = set(_base_ids(notes["id"]))
        if written_notes is not None and len(notemap) < len(base):
            tk.setOptions({"expandNever": True})
            tk.loadData(mei)
            written = match_notes(written_notes(), _verovio_onsets(tk, tk.renderToTimemap(), mei))
            taken = set(notemap.values())
            for b, el in written.items():
                if b in base and b not in notemap and el not in taken:
                    notemap[b] = el
                    taken.add(el)
    finally:
        if src != str(path):
            Path(src).unlink(missing_ok=True)
    coverage = len(notemap) / len(base) if base else 0.0
    return mei, notemap, coverage


_STEP = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCID = {"s": 1, "f": -1, "ss": 2, "x": 2, "ff": -2, "n": 0, "xs": 3, "sx": 3, "tb": -3,
          "3s": 3, "3f": -3, "nf": -1, "ns": 1, "su": 1, "sd": 1, "fu": -1, "fd": -1}
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"


def mei_pitches(mei: str) -> dict[str, int]:
    """MIDI pitch of every <note> of an MEI text, by xml:id (written accidentals, then @accid.ges).

    Notes without @pname/@oct are left out (the caller asks Verovio for those).
    """
    root = etree.fromstring(mei.encode("utf-8"), etree.XMLParser(huge_tree=True,
                                                                  resolve_entities=False))
    out = {}
    for note in root.iter("{*}note"):
        nid, pname, octv = note.get(_XML_ID), note.get("pname"), note.get("oct")
        if not nid or not pname or octv is None:
            continue
        accid = note.get("accid") or note.get("accid.ges")
        if accid is None:
            child = next(note.iter("{*}accid"), None)
            if child is not None:
                accid = child.get("accid") or child.get("accid.ges")
        try:
            out[nid] = 12 * (int(octv) + 1) + _STEP[pname.lower()] + _ACCID.get(accid or "n", 0)
        except (KeyError, ValueError):
            continue
    return out


def _verovio_onsets(tk, timemap: list[dict], mei: str) -> list[tuple[float, int, str]]:
    """(qstamp in quarters, MIDI pitch, written element id) for each note onset of the timemap."""
    pitches = mei_pitches(mei)
    out = []
    for event in timemap:
        q = float(event.get("qstamp", 0.0))
        for el in event.get("on", []):
            base = _REND.sub("", el)
            pitch = pitches.get(base)
            if pitch is None:  # slow path (linear in the score's size per call)
                pitch = tk.getMIDIValuesForElement(el).get("pitch")
            if pitch is not None and pitch >= 0:
                out.append((q, int(pitch), base))
    return out


def _base_ids(ids) -> list[str]:
    return [str(i).split("-", 1)[0] if re.search(r"-\d+$", str(i)) else str(i) for i in ids]


def match_notes(notes: np.ndarray, vrv: list[tuple[float, int, str]]) -> dict[str, str]:
    """Pair score notes with Verovio elements at the same (onset, pitch); vote per base id.

    Parameters
    ----------
    notes : np.ndarray
        NOTE_DTYPE array, shape (N,) (fields id, pitch, onset_beat used).
    vrv : list of (qstamp, pitch, element id)
        Verovio's note onsets, quarters from the start.

    Returns
    -------
    dict
        base id -> element id, for the base ids that matched at least once.
    """
    slots: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
    for q, pitch, el in vrv:
        slots[(round(q / _TOL_Q), pitch)].append(el)
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    unmatched = []
    for base, q, pitch in zip(_base_ids(notes["id"]), notes["onset_beat"], notes["pitch"]):
        key = (round(float(q) / _TOL_Q), int(pitch))
        if slots.get(key):
            votes[base][slots[key].pop(0)] += 1
        else:
            unmatched.append((base, float(q), int(pitch)))
    # Second pass: a note whose onset differs slightly (grace notes, tuplet rounding) takes the
    # nearest free element of the same pitch within a quarter note.
    free = collections.defaultdict(list)
    for (qk, pitch), els in slots.items():
        for el in els:
            free[pitch].append((qk * _TOL_Q, el))
    for base, q, pitch in unmatched:
        if base in votes:
            continue
        cands = free.get(pitch, [])
        if cands:
            j = min(range(len(cands)), key=lambda k: abs(cands[k][0] - q))
            if abs(cands[j][0] - q) <= 1.0:
                votes[base][cands.pop(j)[1]] += 1
    return {base: c.most_common(1)[0][0] for base, c in votes.items()}
