"""Writes of scores: uploads (parsed in a child process under a time limit), demo
scores, deletion."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError

from render.sniff import read_head, sniff_format
from webapp.childproc import ChildCrashed, ChildRefused, ChildTimeout, run_in_child
from webapp.errors import ScoreError, ScoreInUse
from webapp.models import Score
from webapp.scores.filesave import row_save_with_files
from webapp.scores.prep import prepare

log = logging.getLogger(__name__)


def _parse_in_child(path: Path, outdir: Path, *, name: str) -> dict:
    """Parse in a child process under the parse-time limit; the meta dict, or ScoreError."""
    limit = settings.UPLOAD_PARSE_TIMEOUT_S
    try:
        run_in_child(prepare, (path, outdir),
                     {"name": name, "max_notes": settings.UPLOAD_MAX_NOTES,
                      "max_bytes": settings.UPLOAD_MAX_BYTES},
                     outdir=outdir, limit_s=limit, refusals=(ScoreError,))
    except ChildTimeout:
        raise ScoreError(f"reading the score took longer than {limit:g} s; try a shorter score",
                         path=name) from None
    except ChildRefused as exc:
        raise ScoreError(exc.reason, path=name) from None
    except ChildCrashed as exc:
        log.error("score parser failed on %s: %s", name, exc)
        raise ScoreError("the score could not be read (the parser failed on it)", path=name) from None
    return json.loads((outdir / "meta.json").read_text(encoding="utf-8"))


def score_create(*, path: Path, original_filename: str, owner=None, title: str = "",
                 is_demo: bool = False, demo_key: str = "", description: str = "") -> Score:
    """Parse a score file and store it with its engraving; nothing is stored when it is refused.

    Parameters
    ----------
    path : Path
        The file to read (copied into MEDIA_ROOT on success).
    original_filename : str
        The name the user gave it (for messages and the default title).

    Raises
    ------
    ScoreError
        With a one-line reason for the user (empty, too big, not a score, too many notes, ...).
    """
    name = Path(original_filename).name or "score"
    size = path.stat().st_size
    if size == 0:
        raise ScoreError("the file is empty", path=name)
    if size > settings.UPLOAD_MAX_BYTES:
        raise ScoreError(f"the file is {size / 1e6:.1f} MB, over the limit of "
                         f"{settings.UPLOAD_MAX_BYTES / 1e6:g} MB", path=name)
    sniff_format(read_head(path, name, settings.UPLOAD_MAX_BYTES), name)  # cheap refusals first
    with tempfile.TemporaryDirectory(prefix="scoreprep-") as tmp:
        meta = _parse_in_child(path, Path(tmp), name=name)
        score = Score(owner=owner, is_demo=is_demo, demo_key=demo_key, description=description,
                      title=(title or meta["title"])[:200], original_filename=name[:255],
                      format=meta["format"], n_notes=meta["n_notes"],
                      duration_beat=meta["duration_beat"],
                      written_tempo_bpm=meta["written_tempo_bpm"], warnings=meta["warnings"],
                      mei=(Path(tmp) / "score.mei").read_text(encoding="utf-8"),
                      notemap=meta["notemap"], notemap_coverage=meta["coverage"])
        log.info("score %s: %d notes, notemap coverage %.1f%%", name, score.n_notes,
                 100 * score.notemap_coverage)
        suffix = Path(name).suffix.lower()[:10] if Path(name).suffix else ".score"
        row_save_with_files(row=score, files=[("file", path, suffix),
                                              ("parsed", Path(tmp) / "parsed.npz", ".npz")])
    return score


def score_create_from_upload(*, uploaded_file, owner, title: str = "") -> Score:
    """Store an uploaded file (Django UploadedFile) as a private score of ``owner``."""
    name = Path(uploaded_file.name or "score").name
    if uploaded_file.size is not None and uploaded_file.size > settings.UPLOAD_MAX_BYTES:
        raise ScoreError(f"the file is {uploaded_file.size / 1e6:.1f} MB, over the limit of "
                         f"{settings.UPLOAD_MAX_BYTES / 1e6:g} MB", path=name)
    with tempfile.NamedTemporaryFile(prefix="upload-", delete=False) as tmp:
        for chunk in uploaded_file.chunks():
            tmp.write(chunk)
    try:
        return score_create(path=Path(tmp.name), original_filename=name, owner=owner,
                            title=title)
    finally:
        os.unlink(tmp.name)


def score_delete(*, score: Score) -> None:
    """Delete a score, its files and everything rendered from it.

    Raises
    ------
    ScoreInUse
        When a listening test uses the score (its stimuli and answers must stay).
    """
    storage, score_id = score.file.storage, score.id   # delete() sets the instance's id to None
    names = [score.file.name, score.parsed.name]
    names += [p.midi.name for p in score.performances.all()]
    try:
        with transaction.atomic():
            score.delete()
    except ProtectedError as exc:
        users = sorted({str(getattr(o, "survey", o)) for o in exc.protected_objects})
        raise ScoreInUse(f"“{score.title}” is used by the listening test(s) {', '.join(users)}; "
                         "it can be deleted once they are deleted") from exc
    for n in names:
        if n:
            storage.delete(n)
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "audio" / score_id.hex, ignore_errors=True)
