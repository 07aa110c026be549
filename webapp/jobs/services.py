"""Writes of render jobs (create, cancel) and of performances' exports (audio, CSV).

Sending jobs to the workers, failing them and sweeping lost ones is
webapp.jobs.lifecycle; the worker's side of a render is webapp.jobs.worker."""
from __future__ import annotations

import logging
import os
import random
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from render.export import render_audio, save_csv
from webapp.errors import JobNotActive, RenderLimitReached, RenderServiceUnavailable
from webapp.jobs.controls import ControlError, controls_clean
from webapp.jobs.events import job_group_send, job_state_event
from webapp.jobs.lifecycle import render_job_enqueue, render_job_fail, render_jobs_fail_stale
from webapp.jobs.notes import notes_to_array
from webapp.models import Performance, ReferencePerformance, RenderJob, Score
from webapp.scores.selectors import score_bars

log = logging.getLogger(__name__)


def render_job_create(*, score: Score, user, session_key: str, seed: int | None = None,
                      controls: dict | None = None, client_addr: str = "") -> RenderJob:
    """Queue a render of ``score`` for a user (or an anonymous session) on the ``render`` queue.

    Parameters
    ----------
    controls : dict, optional
        Interpretation controls (webapp.jobs.controls); validated and stored normalised. A
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
