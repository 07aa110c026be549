"""Writes: uploads, demo scores, render jobs (create, cancel), audio exports.

Sending jobs to the workers, failing them and sweeping lost ones is webapp.jobqueue; the
worker's side of a render (the streaming loop) is webapp.streaming.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from render.export import render_audio, save_csv
from render.sniff import read_head, sniff_format
from webapp.childproc import ChildCrashed, ChildRefused, ChildTimeout, run_in_child
from webapp.controls import ControlError, controls_clean
from webapp.errors import (JobNotActive, RenderLimitReached, RenderServiceUnavailable, ScoreError,
                           ScoreInUse)
from webapp.filesave import row_save_with_files
from webapp.jobevents import job_group_send, job_state_event
from webapp.jobqueue import render_job_enqueue, render_job_fail, render_jobs_fail_stale
from webapp.models import Performance, ReferencePerformance, RenderJob, Score
from webapp.notes import notes_to_array
from webapp.scoreprep import prepare
from webapp.selectors import score_bars

log = logging.getLogger(__name__)


# --- scores -----------------------------------------------------------------------------------

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


# --- render jobs ------------------------------------------------------------------------------

def render_job_create(*, score: Score, user, session_key: str, seed: int | None = None,
                      controls: dict | None = None, client_addr: str = "") -> RenderJob:
    """Queue a render of ``score`` for a user (or an anonymous session) on the ``render`` queue.

    Parameters
    ----------
    controls : dict, optional
        Interpretation controls (webapp.controls); validated and stored normalised. A
        ``reference_id`` must name an existing reference performance that the caller has
        already checked the requester may use (selectors.reference_get_visible).
    client_addr : str, optional
        The requester's network address; anonymous requesters from one address share
        RENDER_MAX_CONCURRENT_PER_ADDRESS (a client without cookies gets a new session each time).

    Raises
    ------
    RenderLimitReached
        When the requester already has RENDER_MAX_CONCURRENT_PER_USER queued or running jobs, or
        anonymous requesters from ``client_addr`` have RENDER_MAX_CONCURRENT_PER_ADDRESS.
    RenderServiceUnavailable
        When the render queue cannot be reached; no job is left behind.
    ControlError
        (a ValueError) for controls that cannot be used, with a message naming the control.
    """
    raw = dict(controls or {})
    n_bars = None
    if raw.get("sections"):
        n_bars = score_bars(score=score)["n_bars"]
    controls = controls_clean(controls=raw, n_bars=n_bars)
    if "reference_id" in controls and not ReferencePerformance.objects.filter(
            id=controls["reference_id"]).exists():
        raise ControlError("no such reference performance")
    owner = user if user is not None and user.is_authenticated else None
    active = RenderJob.objects.filter(state__in=RenderJob.ACTIVE)
    mine = active.filter(owner=owner) if owner else active.filter(owner=None,
                                                                  session_key=session_key)
    render_jobs_fail_stale(job_ids=mine.values_list("id", flat=True))
    limit = settings.RENDER_MAX_CONCURRENT_PER_USER
    if mine.count() >= limit:
        raise RenderLimitReached(
            f"you already have {limit} renders in progress; wait for one to finish or cancel it")
    if owner is None and client_addr:
        same_addr = active.filter(owner=None, client_addr=client_addr)
        render_jobs_fail_stale(job_ids=same_addr.values_list("id", flat=True))
        if same_addr.count() >= settings.RENDER_MAX_CONCURRENT_PER_ADDRESS:
            raise RenderLimitReached(
                f"{settings.RENDER_MAX_CONCURRENT_PER_ADDRESS} renders from your network address "
                "are already in progress; wait for one to finish, or sign in")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    n_total = score.n_notes * int(controls.get("variations", 1))
    job = RenderJob.objects.create(score=score, owner=owner, session_key=session_key or "",
                                   seed=int(seed), controls=controls, n_notes_total=n_total,
                                   celery_task_id=uuid.uuid4().hex, client_addr=client_addr,
                                   enqueued=timezone.now(), n_enqueued=1)
    if transaction.get_connection().in_atomic_block:
        # The worker must find the row: send once it is committed; then a failed send can only
        # end the job with a message.
        transaction.on_commit(lambda: _enqueue_or_fail(job))
        return job
    try:
        render_job_enqueue(job=job)
    except RenderServiceUnavailable:
        RenderJob.objects.filter(id=job.id).delete()
        raise
    return job


def _enqueue_or_fail(job: RenderJob) -> None:
    try:
        render_job_enqueue(job=job)
    except RenderServiceUnavailable as exc:
        render_job_fail(job_id=job.id, message=str(exc))


def render_job_cancel(*, job: RenderJob) -> RenderJob:
    """Cancel a queued or running job; the worker stops at its next chunk.

    Raises
    ------
    JobNotActive
        When the job has already ended.
    """
    n = RenderJob.objects.filter(id=job.id, state__in=RenderJob.ACTIVE).update(
        state=RenderJob.State.CANCELLED, message="cancelled by the user", finished=timezone.now())
    job.refresh_from_db()
    if not n:
        raise JobNotActive(f"the job has already ended ({job.state})")
    # No Celery revoke: a queued job's task finds it cancelled and does nothing, and a revoke
    # makes the worker ask the (absent) result backend for the task's state and log an error.
    job_group_send(job, job_state_event(job))
    return job


# --- exports ----------------------------------------------------------------------------------

def performance_audio(*, performance: Performance, fmt: str) -> Path:
    """Path of the performance rendered to audio (``wav`` or ``ogg``), made once and cached."""
    if fmt not in ("wav", "ogg"):
        raise ValueError(f"unknown audio format {fmt!r}")
    out = Path(settings.MEDIA_ROOT) / "audio" / performance.score_id.hex / f"{performance.id.hex}.{fmt}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}.{fmt}")
        render_audio(performance.midi.path, tmp, fmt=fmt)
        os.replace(tmp, out)
    return out


def performance_csv(*, performance: Performance) -> str:
    """The per-note CSV of a performance (render.export's columns), as text."""
    with tempfile.TemporaryDirectory(prefix="csv-") as tmp:
        path = save_csv(notes_to_array(performance.notes), Path(tmp) / "notes.csv")
        return path.read_text(encoding="utf-8")
