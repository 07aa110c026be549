"""Recognising a score file before any reader runs: its format from its content, its text
encoding, and the .mxl zip container (validated, its MusicXML member read within the limits).

The file extension is not trusted: a MIDI file named ``.xml`` is MIDI, and random bytes named
``.mid`` are refused. Every refusal is a `render.errors.ScoreError` with a one-line reason:
binary or unknown content, XML with entity declarations (no XXE or entity expansion reaches a
parser), XML that is neither MusicXML nor MEI, an .mxl that is not a zip, is encrypted, has
members that escape its folder or unpacks to more than MAX_UNZIPPED_BYTES. The format readers
are render.loaders.
"""
from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from lxml import etree

from render.errors import ScoreError

MAX_UNZIPPED_BYTES = 100_000_000
SNIFF_BYTES = 65_536
MUSICXML_ROOTS = ("score-partwise", "score-timewise")


def sniff_format(head: bytes, label: str = "") -> str:
    """Recognise a score format from the first bytes of a file.

    Returns one of ``musicxml, mxl, midi, mei, kern``; raises ScoreError for anything else.
    """
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "mxl"
    if head.startswith(b"MThd"):
        return "midi"
    if Path(label).suffix.lower() == ".mxl":
        raise ScoreError("the .mxl file is not a zip archive", path=label or None)
    text = decode_head(head)
    if text is None:
        raise ScoreError("not a score file (MusicXML, MXL, MIDI, MEI or Humdrum kern): "
                         "the content is binary", path=label or None)
    stripped = text.lstrip()
    if stripped.startswith("<"):
        if "<!ENTITY" in stripped:  # entity tricks: XXE, billion laughs
            raise ScoreError("XML entity declarations are not allowed", path=label or None)
        root = xml_root(stripped)
        if root in MUSICXML_ROOTS:
            return "musicxml"
        if root in ("mei", "meiCorpus"):
            return "mei"
        if root is None:
            raise ScoreError("invalid XML: no root element", path=label or None)
        raise ScoreError(f"an XML file that is neither MusicXML nor MEI (root element <{root}>)",
                         path=label or None)
    if re.search(r"^\*\*kern\b|\t\*\*kern\b", text, re.M):
        return "kern"
    raise ScoreError("not a score file (MusicXML, MXL, MIDI, MEI or Humdrum kern)",
                     path=label or None)


def read_head(path: Path, label: str, max_bytes: int) -> bytes:
    """The first SNIFF_BYTES of a score file; ScoreError for a folder, an empty or too large
    file, or one that cannot be read."""
    try:
        if path.is_dir():
            raise ScoreError("is a folder, not a file", path=label)
        size = path.stat().st_size
        if size == 0:
            raise ScoreError("the file is empty", path=label)
        if size > max_bytes:
            raise ScoreError(f"the file is {size / 1e6:.1f} MB, over the limit of "
                             f"{max_bytes / 1e6:g} MB", path=label)
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError as exc:
        raise ScoreError(f"cannot read the file ({exc.strerror or exc})", path=label) from exc


def decode_head(head: bytes) -> str | None:
    """Text of a file head, or None when it looks binary."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="ignore")
    if b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):  # latin-1 text is fine, noise is not
        text = head.decode("latin-1")
        control = sum(1 for c in text if ord(c) < 32 and c not in "\t\r\n\f")
        if control > len(text) // 100:
            return None
    return text.lstrip("\ufeff")


def xml_root(text: str) -> str | None:
    text = re.sub(r"<\?.*?\?>|<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", "", text, flags=re.S)
    m = re.match(r"\s*<([A-Za-z_][\w.:-]*)", text)
    return m.group(1).split(":")[-1] if m else None


def mxl_musicxml(path: Path, label: str) -> bytes:
    """The MusicXML score inside an .mxl archive (validated like a MusicXML file's head)."""
    root_name, xml = read_mxl(path, label)
    if b"<!ENTITY" in xml[:SNIFF_BYTES]:
        raise ScoreError("XML entity declarations are not allowed", path=label)
    if xml_root((decode_head(xml[:SNIFF_BYTES]) or "").lstrip()) not in (
            "score-partwise", "score-timewise"):
        raise ScoreError(f"the .mxl member {root_name} is not MusicXML", path=label)
    return xml


def read_mxl(path: Path, label: str) -> tuple[str, bytes]:
    """Validate an .mxl archive and return (rootfile name, its bytes)."""

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ScoreError(f"the .mxl file is not a valid zip archive ({one_line(exc)})",
                         path=label) from exc
    with zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            if (name.startswith("/") or re.match(r"[A-Za-z]:", name)
                    or ".." in PurePosixPath(name).parts):
                raise ScoreError(f"the .mxl member {info.filename!r} escapes the archive folder",
                                 path=label)
            if info.flag_bits & 0x1:
                raise ScoreError("the .mxl archive is encrypted", path=label)
            total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise ScoreError(f"the .mxl archive unpacks to {total / 1e6:.0f} MB, over the limit "
                             f"of {MAX_UNZIPPED_BYTES / 1e6:.0f} MB", path=label)
        root_name = _mxl_rootfile(zf, label)
        if root_name is None:
            raise ScoreError("the .mxl archive holds no MusicXML score", path=label)
        return root_name, _read_member(zf, root_name, label)


def _mxl_rootfile(zf: zipfile.ZipFile, label: str) -> str | None:
    """The archive member holding the score: the container's first MusicXML rootfile (paths
    matched leniently: ``./``, ``/``, ``%20``, backslashes, letter case), else the first member
    whose content is MusicXML."""
    def norm(name: str) -> str:
        return unquote(name.replace("\\", "/")).lstrip("./").lower()

    names = zf.namelist()
    by_norm = {}
    for n in names:
        by_norm.setdefault(norm(n), n)
    wanted = []
    if "meta-inf/container.xml" in by_norm:
        try:
            container = etree.fromstring(_read_member(zf, by_norm["meta-inf/container.xml"], label),
                                         etree.XMLParser(resolve_entities=False, no_network=True))
            roots = container.findall(".//{*}rootfile")
        except etree.XMLSyntaxError:  # a broken container: look at the members themselves
            roots = []
        roots.sort(key=lambda e: "musicxml" not in (e.get("media-type") or "musicxml"))
        wanted = [by_norm.get(norm(e.get("full-path") or "")) for e in roots]
    rest = [n for n in names if not norm(n).startswith("meta-inf/") and not n.endswith("/")]
    rest.sort(key=lambda n: not n.lower().endswith((".xml", ".musicxml")))
    for n in [w for w in wanted if w] + rest:
        with zf.open(n) as f:
            head = f.read(4096)
        if xml_root((decode_head(head) or "").lstrip()) in MUSICXML_ROOTS:
            return n
    return next((w for w in wanted if w), None)


def _read_member(zf: zipfile.ZipFile, name: str, label: str) -> bytes:
    """Read one member, never more than the unpacked-size limit (headers can lie)."""
    try:
        with zf.open(name) as f:
            data = f.read(MAX_UNZIPPED_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ScoreError(f"the .mxl member {name} cannot be unpacked ({one_line(exc)})",
                         path=label) from exc
    if len(data) > MAX_UNZIPPED_BYTES:
        raise ScoreError(f"the .mxl archive unpacks to more than "
                         f"{MAX_UNZIPPED_BYTES / 1e6:.0f} MB", path=label)
    return data


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line for the user (never a Python exception's name)."""
    text = " ".join(str(exc).split())
    if not text or isinstance(exc, (KeyError, IndexError, AttributeError, TypeError)):
        text = "its data is malformed"  # never a Python exception's name
    return text if len(text) <= limit else text[: limit - 3] + "..."
