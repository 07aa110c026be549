"""Writes: reference performances (uploaded MIDI aligned to a score, encoded to prime renders).

The alignment (webapp.references.align) runs in a child process (webapp.childproc) under
REFERENCE_ALIGN_TIMEOUT_S; nothing is stored unless it succeeds.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings

from render.errors import RenderError
from webapp.childproc import ChildCrashed, ChildRefused, ChildTimeout, run_in_child
from webapp.models import ReferencePerformance, Score
from webapp.references.align import align_reference
from webapp.scores.filesave import row_save_with_files

log = logging.getLogger(__name__)
MIDI_SUFFIXES = (".mid", ".midi")


class ReferenceRefused(Exception):
    """An uploaded reference that cannot be used; the message is shown to the user as it is."""


def align_timeout_s() -> float:
    return settings.REFERENCE_ALIGN_TIMEOUT_S


def _align_in_child(midi_path: Path, parsed_path: Path, outdir: Path) -> dict:
    """Run webapp.references.align.align_reference in a child process under the time limit; the report,
    or ReferenceRefused."""
    limit = align_timeout_s()
    try:
        run_in_child(align_reference, (midi_path, parsed_path, outdir), outdir=outdir, limit_s=limit,
                     refusals=(RenderError,))
    except ChildTimeout:
        raise ReferenceRefused(f"aligning the performance took longer than {limit:g} s; "
                               "try a shorter excerpt") from None
    except ChildRefused as exc:
        raise ReferenceRefused(exc.reason) from None  # render.align's one-line reason
    except ChildCrashed as exc:
        log.error("reference alignment failed: %s", exc)
        raise ReferenceRefused("the performance could not be aligned (the aligner failed on it)") from None
    return json.loads((outdir / "report.json").read_text(encoding="utf-8"))


def reference_create(*, path: Path, original_filename: str, score: Score, user,
                     session_key: str, title: str = "") -> ReferencePerformance:
    """Align a MIDI performance to ``score``, encode it and store it for the requester.

    Parameters
    ----------
    path : Path
        The MIDI file (copied into MEDIA_ROOT on success).
    original_filename : str
        The name the user gave it (default title).
    score : Score
        The score it performs (already checked visible to the requester).
    user, session_key
        Owner: the signed-in user, else the anonymous session.

    Raises
    ------
    ReferenceRefused
        Not a MIDI file, too big, too slow to align, or not a performance of this score.
    """
    name = Path(original_filename).name or "reference.mid"
    size = path.stat().st_size
    if size == 0:
        raise ReferenceRefused("the file is empty")
    if size > settings.UPLOAD_MAX_BYTES:
        raise ReferenceRefused(f"the file is {size / 1e6:.1f} MB, over the limit of "
                               f"{settings.UPLOAD_MAX_BYTES / 1e6:g} MB")
    with open(path, "rb") as f:
        if f.read(4) != b"MThd":
            raise ReferenceRefused(f"{name} is not a MIDI file (a reference performance is "
                                   "a .mid recording of someone playing the score)")
    owner = user if user is not None and user.is_authenticated else None
    with tempfile.TemporaryDirectory(prefix="refalign-") as tmp:
        report = _align_in_child(path, Path(score.parsed.path), Path(tmp))
        notes = json.loads((Path(tmp) / "notes.json").read_text(encoding="utf-8"))
        ref = ReferencePerformance(score=score, owner=owner,
                                   session_key="" if owner else (session_key or ""),
                                   title=(title or Path(name).stem)[:200],
                                   original_filename=name[:255], report=report, notes=notes,
                                   n_matched=int(report.get("n_matched", 0)))
        row_save_with_files(row=ref, files=[("midi", path, ".mid"),
                                            ("encoded", Path(tmp) / "reference.npz", ".npz")])
    log.info("reference %s for score %s: %s", name, score.id, report)
    return ref


def reference_create_from_upload(*, uploaded_file, score: Score, user, session_key: str,
                                 title: str = "") -> ReferencePerformance:
    """Store an uploaded MIDI (Django UploadedFile) as a reference of ``score``."""
    name = Path(uploaded_file.name or "reference.mid").name
    if uploaded_file.size is not None and uploaded_file.size > settings.UPLOAD_MAX_BYTES:
        raise ReferenceRefused(f"the file is {uploaded_file.size / 1e6:.1f} MB, over the limit "
                               f"of {settings.UPLOAD_MAX_BYTES / 1e6:g} MB")
    with tempfile.NamedTemporaryFile(prefix="reference-", suffix=".mid", delete=False) as tmp:
        for chunk in uploaded_file.chunks():
            tmp.write(chunk)
    try:
        return reference_create(path=Path(tmp.name), original_filename=name, score=score,
                                user=user, session_key=session_key, title=title)
    finally:
        os.unlink(tmp.name)


def reference_delete(*, reference: ReferencePerformance) -> None:
    """Delete a reference and its files (renders made with it keep their notes)."""
    storage = reference.encoded.storage
    names = [reference.midi.name, reference.encoded.name]
    reference.delete()
    for n in names:
        if n:
            storage.delete(n)
