"""Rewrite common, valid MEI encodings into the subset partitura's MEI reader takes.

`prepare_mei` runs before every MEI parse; a file that needs none of it comes back unchanged.

- ``meiCorpus``: the first ``<mei>`` piece is read (a warning says how many there are).
- ``xml:id`` values that are not XML names (``1``, ``0eff48dc-...``, ``a b``) are renamed, with
  every ``#id`` reference to them.
- Editorial markup: ``<app>`` keeps its ``<lem>`` (else the first ``<rdg>``), ``<choice>`` its
  ``<corr>``, ``<reg>``, ``<expan>`` (else the first child); ``<supplied>``, ``<add>``,
  ``<unclear>``, ``<damage>``, ``<restore>``, ``<sic>``, ``<corr>``, ``<orig>``, ``<reg>`` are
  unwrapped, ``<del>`` and ``<gap>`` dropped.
- Layer content the reader does not know but can be read through: tremolos, grace groups and
  ligatures are unwrapped, ``<mSpace>`` is a measure rest, bar lines and signature changes
  inside a layer are dropped.
- Staff groups without a ``@symbol`` or ``<grpSym>`` get ``symbol="none"``.
- Nested tuplets become single tuplets with the product ratio.
- Ties given as ``@tie`` on notes or as ``<tie>`` with ``@tstamp``/``@tstamp2`` get the
  ``@startid``/``@endid`` the reader needs.
"""
from __future__ import annotations

import re
from fractions import Fraction

MEI_NS = "http://www.music-encoding.org/ns/mei"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_NCNAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_UNWRAP = {"supplied", "add", "unclear", "damage", "restore", "sic", "corr", "orig", "reg",
           "expan", "abbr", "subst", "bTrem", "fTrem", "graceGrp", "ligature", "handShift"}
_DROP = {"del", "gap", "barLine", "keySig", "meterSig", "custos", "annot", "midi"}
_DURS = {"maxima": Fraction(8), "long": Fraction(4), "breve": Fraction(2)}


def prepare_mei(data: bytes) -> tuple[bytes, list[str]]:
    """MEI bytes the partitura reader can take, and the warnings for the user.

    Parameters
    ----------
    data : bytes
        An MEI document (root ``mei`` or ``meiCorpus``) without entity declarations.

    Returns
    -------
    data : bytes
        The rewritten document, or ``data`` itself when nothing needed a change.
    warnings : list of str

    Raises
    ------
    lxml.etree.XMLSyntaxError
        When the document is not well-formed XML.
    """
    import codecs

    from lxml import etree

    recoded = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if recoded:  # Verovio and the id repair below read UTF-8
        text = re.sub(r"^(\s*<\?xml[^>]*encoding=[\"'])[^\"']*", r"\1UTF-8",
                      data.decode("utf-16").lstrip("\ufeff"))
        data = text.encode("utf-8")
    text_fixed, n_ids = _fix_ids(data)
    root = etree.fromstring(text_fixed, etree.XMLParser(  # ids repeat across a corpus' pieces
        resolve_entities=False, no_network=True, collect_ids=False))
    warnings: list[str] = []
    changed = n_ids > 0 or recoded
    if etree.QName(root).localname == "meiCorpus":
        old = root
        pieces = [e for e in root if etree.QName(e).localname == "mei"]
        if not pieces:
            return text_fixed, warnings
        root = etree.Element(_q("mei"), nsmap={None: MEI_NS}, attrib=dict(pieces[0].attrib))
        root.set("meiversion", root.get("meiversion") or old.get("meiversion") or "5.0")
        root.extend(list(pieces[0]))
        if len(pieces) > 1:
            warnings.append(f"the MEI corpus holds {len(pieces)} pieces; the first was read")
        changed = True
    changed |= _wrap_body(root)
    changed |= _resolve_editorial(root)
    changed |= _simplify_layers(root)
    changed |= _group_symbols(root)
    changed |= _flatten_tuplets(root)
    n_tied, n_lost = _attribute_ties(root), _tstamp_ties(root)
    changed |= bool(n_tied or n_lost)
    if n_lost:
        warnings.append(f"{n_lost} ties given by time stamps could not be placed and were left out")
    if not changed:
        return data, warnings  # (recoded data counts as changed)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), warnings


def _q(name: str) -> str:
    return f"{{{MEI_NS}}}{name}"


def _local(el) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


# --- ids ---------------------------------------------------------------------------------------

def _fix_ids(data: bytes) -> tuple[bytes, int]:
    """Rename xml:id values that are not NCNames (text level: lxml refuses to parse them)."""
    ids = re.findall(rb'xml:id\s*=\s*"([^"]*)"|xml:id\s*=\s*\'([^\']*)\'', data)
    bad = {a or b for a, b in ids if not _NCNAME.match((a or b).decode("utf-8", "replace"))}
    if not bad:
        return data, 0
    rename = {old: b"id-" + re.sub(rb"[^\w.\-]", b"_", old) for old in bad}

    def attr(m):
        name, quote, value = m.group(1), m.group(2), m.group(3)
        if name.endswith(b"xml:id"):
            return m.group(0) if value not in rename else name + b"=" + quote + rename[value] + quote
        toks = value.split(b" ")
        new = [b"#" + rename[t[1:]] if t.startswith(b"#") and t[1:] in rename else t for t in toks]
        return name + b"=" + quote + b" ".join(new) + quote

    fixed = re.sub(rb'([\w:.\-]+)\s*=\s*(["\'])(.*?)\2', attr, data, flags=re.S)
    return fixed, len(bad)


def _wrap_body(root) -> bool:
    """``<music><score>`` without ``<body><mdiv>`` (older encodings): add them."""
    from lxml import etree

    music = root.find(_q("music"))
    if music is None or music.find(_q("body")) is not None or music.find(_q("score")) is None:
        return False
    body = etree.Element(_q("body"))
    mdiv = etree.SubElement(body, _q("mdiv"))
    mdiv.extend([e for e in music if _local(e) in ("score", "parts")])
    music.append(body)
    return True


# --- markup ------------------------------------------------------------------------------------

def _unwrap(el) -> None:
    """Replace an element by its children (its tail text is kept)."""
    parent = el.getparent()
    i = parent.index(el)
    for k, child in enumerate(list(el)):
        parent.insert(i + k, child)
    parent.remove(el)


def _resolve_editorial(root) -> bool:
    changed = False
    for app in list(root.iter(_q("app"))):
        kids = [e for e in app if _local(e) in ("lem", "rdg")]
        keep = next((e for e in kids if _local(e) == "lem"), kids[0] if kids else None)
        _keep_one(app, keep)
        changed = True
    for choice in list(root.iter(_q("choice"))):
        kids = [e for e in choice if isinstance(e.tag, str)]
        keep = next((e for name in ("corr", "reg", "expan") for e in kids if _local(e) == name),
                    kids[0] if kids else None)
        _keep_one(choice, keep)
        changed = True
    for el in list(root.iter()):
        if _local(el) in ("lem", "rdg") and el.getparent() is not None:
            _unwrap(el)
            changed = True
    return changed


def _keep_one(el, keep) -> None:
    for child in list(el):
        if child is not keep:
            el.remove(child)
    if keep is not None:
        _unwrap(keep)
    _unwrap(el)


def _simplify_layers(root) -> bool:
    changed = False
    for layer in root.iter(_q("layer")):
        for el in list(layer.iter()):
            name = _local(el)
            if el is layer or el.getparent() is None:
                continue
            if name in _DROP:
                el.getparent().remove(el)
                changed = True
            elif name in _UNWRAP:
                _unwrap(el)
                changed = True
            elif name == "mSpace":
                el.tag = _q("mRest")
                changed = True
    for el in list(root.iter(_q("del"), _q("gap"))):  # outside layers too
        el.getparent().remove(el)
        changed = True
    for el in list(root.iter(*(_q(n) for n in _UNWRAP))):
        _unwrap(el)
        changed = True
    return changed


def _group_symbols(root) -> bool:
    changed = False
    for grp in root.iter(_q("staffGrp")):
        sym = grp.find(_q("grpSym"))
        if grp.get("symbol") is None and (sym is None or sym.get("symbol") is None):
            if sym is not None:
                sym.set("symbol", "none")
            else:
                grp.set("symbol", "none")
            changed = True
    return changed


def _flatten_tuplets(root) -> bool:
    """Every event inside nested tuplets gets one tuplet with the product of their ratios."""
    from lxml import etree

    changed = False
    outer = [t for t in root.iter(_q("tuplet"))
             if t.find(f".//{_q('tuplet')}") is not None
             and not any(_local(a) == "tuplet" for a in t.iterancestors())]
    for top in outer:
        singles = []
        for ev in _events(top):
            num, base = 1, 1
            for anc in ev.iterancestors():
                if _local(anc) == "tuplet":
                    num *= int(anc.get("num", 3))
                    base *= int(anc.get("numbase", 2))
                if anc is top:
                    break
            t = etree.Element(_q("tuplet"), num=str(num), numbase=str(base))
            t.append(ev)  # moves the event out of the nested structure
            singles.append(t)
        parent, i = top.getparent(), top.getparent().index(top)
        parent.remove(top)
        for k, t in enumerate(singles):
            parent.insert(i + k, t)
        changed = True
    return changed


def _events(el):
    """Notes, chords, rests and spaces under ``el`` in document order (not inside chords)."""
    out = []
    for child in el:
        name = _local(child)
        if name in ("note", "chord", "rest", "space", "clef"):
            out.append(child)
        elif name in ("beam", "tuplet"):
            out.extend(_events(child))
    return out


# --- ties --------------------------------------------------------------------------------------

def _note_id(note, k: list[int]) -> str:
    nid = note.get(XML_ID)
    if not nid:
        k[0] += 1
        nid = f"tie-note-{k[0]}"
        note.set(XML_ID, nid)
    return nid


def _add_tie(start, end, k: list[int]) -> None:
    from lxml import etree

    measure = next((a for a in start.iterancestors() if _local(a) == "measure"), None)
    if measure is None:
        return
    tie = etree.SubElement(measure, _q("tie"))
    tie.set("startid", "#" + _note_id(start, k))
    tie.set("endid", "#" + _note_id(end, k))


def _pitch_key(note) -> tuple:
    staff = next((a.get("n") for a in note.iterancestors() if _local(a) == "staff"), None)
    return staff, note.get("pname"), note.get("oct")


def _attribute_ties(root) -> int:
    """``<note tie="i|m|t">`` to ``<tie startid endid>`` (same staff and pitch, next note)."""
    if root.find(f".//{_q('note')}[@tie]") is None:
        return 0
    pending, k, n = {}, [0], 0
    for note in root.iter(_q("note")):
        tie = note.get("tie")
        if tie is None:
            continue
        key = _pitch_key(note)
        if tie in ("m", "t") and key in pending:
            _add_tie(pending.pop(key), note, k)
            n += 1
        if tie in ("i", "m"):
            pending[key] = note
        del note.attrib["tie"]
    return n


def _tstamp_ties(root) -> int:
    """Give ``<tie>`` elements placed by ``@tstamp``/``@tstamp2`` their note ids.

    Returns the number of such ties that matched no notes (they are removed).
    """
    ties = [t for t in root.iter(_q("tie")) if t.get("startid") is None and t.get("tstamp")]
    if not ties:
        return 0
    measures, unit, units = [], Fraction(4), {}
    for el in root.iter(_q("scoreDef"), _q("staffDef"), _q("meterSig"), _q("measure")):
        u = el.get("meter.unit") or (el.get("unit") if _local(el) == "meterSig" else None)
        if u and u.isdigit():
            unit = Fraction(int(u))
        if _local(el) == "measure":
            units[len(measures)] = unit
            measures.append(el)
    index = {id(m): i for i, m in enumerate(measures)}
    lost, k, cache = 0, [0], {}
    for tie in ties:
        m = next((a for a in tie.iterancestors() if _local(a) == "measure"), None)
        m2 = re.fullmatch(r"\s*(\d+)m\+([\d.]+)\s*", tie.get("tstamp2") or "")
        pairs = []
        if m is not None and m2 is not None:
            i = index[id(m)]
            j = i + int(m2.group(1))
            staves = (tie.get("staff") or "").split()
            if j < len(measures):
                starts = _notes_at(measures[i], units[i], float(tie.get("tstamp")), staves, cache)
                ends = _notes_at(measures[j], units[j], float(m2.group(2)), staves, cache)
                pairs = [(a, b) for a in starts for b in ends if _pitch_key(a) == _pitch_key(b)]
        for a, b in pairs:
            _add_tie(a, b, k)
        if not pairs:
            lost += 1
        tie.getparent().remove(tie)
    return lost


def _notes_at(measure, unit: Fraction, tstamp: float, staves: list[str], cache: dict) -> list:
    if id(measure) not in cache:
        events = []
        for staff in measure.iter(_q("staff")):
            for layer in staff.iter(_q("layer")):
                _walk(layer, Fraction(0), Fraction(1), events, staff.get("n"))
        cache[id(measure)] = events
    return [n for t, staff, n in cache[id(measure)]
            if (not staves or staff in staves) and abs(float(t * unit) + 1 - tstamp) < 1e-3]


def _walk(el, t: Fraction, ratio: Fraction, out: list, staff) -> Fraction:
    """Append (onset in whole notes, staff n, note) of every note under ``el``; the end time."""
    for child in el:
        name = _local(child)
        if name == "note":
            out.append((t, staff, child))
            t += _length(child, ratio)
        elif name == "chord":
            out.extend((t, staff, n) for n in child.iter(_q("note")))
            t += _length(child, ratio)
        elif name in ("rest", "space"):
            t += _length(child, ratio)
        elif name == "tuplet":
            t = _walk(child, t, ratio * Fraction(int(child.get("numbase", 2)),
                                                 int(child.get("num", 3))), out, staff)
        elif name == "beam":
            t = _walk(child, t, ratio, out, staff)
    return t


def _length(el, ratio: Fraction) -> Fraction:
    if el.get("grace"):
        return Fraction(0)
    dur = el.get("dur", "4")
    base = _DURS.get(dur) or (Fraction(1, int(dur)) if dur.isdigit() and int(dur) else Fraction(0))
    dots = int(el.get("dots", 0) or 0)
    return base * (2 - Fraction(1, 2 ** dots)) * ratio
