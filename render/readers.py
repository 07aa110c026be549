"""The loader's helpers around partitura: the music21 second path, silence, one-line reasons.

`reason` turns whatever a parser raised into a line a user can read: a known limitation of the
reader by name (``the MEI element <fing> is not supported``), or, for an internal failure
(``KeyError``, ``IndexError``, ``StopIteration`` ...), a plain sentence that names no Python
exception type. `scrub` takes server-side file names out of a message.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

_INTERNAL = (KeyError, IndexError, AttributeError, TypeError, StopIteration, AssertionError,
             ZeroDivisionError, UnboundLocalError, NameError, RecursionError, OverflowError)
_KNOWN = [  # partitura's own messages -> what the user reads
    (re.compile(r"Tag \{[^}]*\}(\w+) not supported|element \{[^}]*\}(\w+) is not yet supported"),
     lambda m: f"the MEI element <{m.group(1) or m.group(2)}> is not supported"),
    (re.compile(r"Only MEI with a single score element"),
     lambda m: "MEI files with more than one <score> are not supported"),
    (re.compile(r"Not all parts are specified in measure (\d+)"),
     lambda m: f"a measure leaves out some of the staves (measure {int(m.group(1)) + 1}), "
               "which the MEI reader does not support"),
    (re.compile(r"Nested tuplets"), lambda m: "nested tuplets are not supported"),
    (re.compile(r"Multi-rests with more than 1 measure"),
     lambda m: "multi-measure rests (<multiRest>) are not supported"),
    (re.compile(r"Unknown mode (\w+)"), lambda m: f"the key mode '{m.group(1)}' is not supported"),
]
_RAW = re.compile(r"\b\w*(Error|Exception)\b|Traceback|object has no attribute|NoneType"
                  r"|index out of range|\{http")


def reason(exc: BaseException, fmt_name: str, limit: int = 160) -> str:
    """One line for the user on why a ``fmt_name`` file could not be read.

    Parameters
    ----------
    exc : BaseException
        What the parser raised.
    fmt_name : str
        The format as users call it (``MusicXML``, ``MEI``).
    limit : int
        Longest message, in characters.
    """
    text = " ".join(str(exc).split())
    for pattern, say in _KNOWN:
        m = pattern.search(text)
        if m:
            return f"could not read the {fmt_name} file: {say(m)}"
    if isinstance(exc, _INTERNAL) or not text or _RAW.search(text):
        return (f"could not read the {fmt_name} file: it uses an encoding the {fmt_name} "
                "reader does not support (no second reader could read it either)")
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"could not read the {fmt_name} file: {text}"


def scrub(text: str, *paths) -> str:
    """``text`` without any of ``paths`` or other temporary file names in it."""
    for p in paths:
        if p:
            text = text.replace(str(p), "the file").replace(Path(p).name, "the file")
    tmp = re.escape(tempfile.gettempdir().rstrip("/"))
    return re.sub(rf"{tmp}/[^\s,:;()'\"]*", "the file", text)


@contextlib.contextmanager
def quiet():
    """Keep parsers' warnings, stdout prints and stderr output (Verovio's C++ log included)
    out of ours: the command line prints one line, the web app shows one line."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        saved = None
        try:
            sys.__stderr__.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except (OSError, AttributeError, ValueError):  # no fd 2 (embedded interpreters)
            saved = None
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)


def read_with_music21(data: bytes, suffix: str):
    """music21 reads the score and writes MusicXML, which partitura then reads.

    Parameters
    ----------
    data : bytes
        The score file's content (MusicXML, MEI or Humdrum).
    suffix : str
        Its extension for music21's format detection (``.musicxml``, ``.mei``, ``.krn``).

    Returns
    -------
    partitura.score.Score

    Raises
    ------
    Exception
        Whatever music21 or partitura raised (the caller reports the first reader's reason).
    """
    import music21
    import partitura as pt

    with tempfile.TemporaryDirectory(prefix="render-m21-") as tmp:
        src = Path(tmp) / f"score{suffix}"
        src.write_bytes(data)
        parsed = music21.converter.parse(str(src), format=_M21_FORMATS.get(suffix))
        if isinstance(parsed, music21.stream.Opus):  # a collection: its first piece
            parsed = parsed.scores[0] if parsed.scores else parsed
        out = parsed.write("musicxml", fp=Path(tmp) / "out.musicxml")
        return pt.load_musicxml(str(out), quiet=True)


_M21_FORMATS = {".musicxml": "musicxml", ".mei": "mei", ".krn": "humdrum"}


class ReaderCrashed(RuntimeError):
    """A native reader (Verovio) died or failed in its child process."""


def verovio_mei(data: bytes) -> bytes:
    """Verovio's own MEI of an MEI document, made in a forked child process.

    partitura's MEI reader loads every file through Verovio, whose C++ code can abort the whole
    process on valid but unusual input; here an abort only ends the child. The MEI Verovio writes
    back is what partitura then reads (Verovio reads its own output safely).

    Raises
    ------
    ReaderCrashed
        When Verovio could not load the document or its process died.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(r)
            import verovio

            tk = verovio.toolkit()
            if tk.loadData(data.decode("utf-8", errors="replace")):
                out = tk.getMEI().encode("utf-8")
                with os.fdopen(w, "wb") as f:
                    f.write(out)
                code = 0 if out else 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not out:
        raise ReaderCrashed("Verovio could not load the MEI file")
    return out
