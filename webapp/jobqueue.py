"""Writes of the render queue: sending jobs to the workers, telling listeners, sweeping lost jobs.

Everything here survives a Redis that is down or restarting: a job that cannot be sent raises
`RenderServiceUnavailable` (the views answer 503), a channel-layer send is retried with a short
backoff and reports failure instead of raising, and a queued job whose broker message was lost is
sent again, then failed with a message, by `render_jobs_sweep_queued`.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from webapp.errors import RenderServiceUnavailable
from webapp.models import RenderJob

log = logging.getLogger(__name__)
# Faults of the broker or channel layer (Redis down, restarting, unreachable).
BROKER_ERRORS = (KombuOperationalError, RedisError, OSError)
SEND_BACKOFF_S = (0.1, 0.4, 1.0)   # waits between the attempts of a channel-layer send
UNAVAILABLE_MESSAGE = "the render service is unavailable, try again"
NOT_TAKEN_MESSAGE = ("no render worker took this job (the render service was restarted or is "
                     "overloaded); press Render to try again")


def job_group_send(job: RenderJob, event: dict) -> bool:
    """Send a channel-layer event to everyone listening to the job, retrying a Redis fault.

    Parameters
    ----------
    job : RenderJob
    event : dict
        The channel-layer event (``type`` names the consumer's handler).

    Returns
    -------
    bool
        False when every attempt failed (the fault is logged, never raised).
    """
    layer = get_channel_layer()
    if layer is None:
        return True
    for attempt in range(len(SEND_BACKOFF_S) + 1):
        try:
            async_to_sync(layer.group_send)(job.group_name, event)
            return True
        except BROKER_ERRORS as exc:
            if attempt == len(SEND_BACKOFF_S):
                log.warning("job %s: could not send %s to its listeners (%s: %s)", job.id,
                            event.get("type"), type(exc).__name__, exc)
                return False
            time.sleep(SEND_BACKOFF_S[attempt])
    return False


def job_state_event(job: RenderJob) -> dict:
    """Channel-layer event announcing a job's state (consumers relay it as a 'state' message)."""
    return {"type": "job.state", "state": job.state, "message": job.message or None}


def render_time_limit(*, n_notes: int) -> float:
    """Seconds a render of ``n_notes`` notes (all takes) may run: a base plus a time per note."""
    return settings.RENDER_TIME_LIMIT_BASE_S + settings.RENDER_TIME_LIMIT_PER_NOTE_S * n_notes


def render_job_enqueue(*, job: RenderJob) -> None:
    """Send the job's task to the ``render`` queue with its time limits.

    Sending the same job twice is harmless: the task starts a job only while it is queued.

    Raises
    ------
    RenderServiceUnavailable
        When the broker cannot be reached (after Celery's own publish retries).
    """
    from webapp.tasks import render_job

    limit = render_time_limit(n_notes=job.n_notes_total)
    try:
        render_job.apply_async(args=[str(job.id)], task_id=job.celery_task_id, queue="render",
                               soft_time_limit=limit, time_limit=limit + 30)
    except BROKER_ERRORS as exc:
        log.warning("job %s could not be queued: %s: %s", job.id, type(exc).__name__, exc)
        raise RenderServiceUnavailable(UNAVAILABLE_MESSAGE) from exc


def render_job_fail(*, job_id, message: str) -> bool:
    """End a queued or running job as failed with ``message``; False if it had already ended."""
    n = RenderJob.objects.filter(id=job_id, state__in=RenderJob.ACTIVE).update(
        state=RenderJob.State.FAILED, message=message, finished=timezone.now())
    if n:
        job_group_send(RenderJob.objects.get(id=job_id),
                       {"type": "job.state", "state": "failed", "message": message})
    return bool(n)


def render_jobs_sweep_queued(*, job_ids=None) -> int:
    """Send again, or fail, the queued jobs that no worker has taken within their grace time.

    A job's grace is RENDER_QUEUED_STALE_AFTER_S plus the estimated wait for the jobs ahead of
    it, counted from its last send. Past it, the job is sent again (its message may have been
    lost with a Redis restart or a worker that died before starting it) up to
    RENDER_MAX_REQUEUES times, then failed with a message.

    Parameters
    ----------
    job_ids : iterable of UUID, optional
        Only look at these jobs.

    Returns
    -------
    int
        How many jobs were sent again or failed.
    """
    from webapp.selectors import job_queue_position

    now = timezone.now()
    qs = RenderJob.objects.filter(
        state=RenderJob.State.QUEUED,
        enqueued__lt=now - timedelta(seconds=settings.RENDER_QUEUED_STALE_AFTER_S))
    if job_ids is not None:
        qs = qs.filter(id__in=list(job_ids))
    swept = 0
    for job in qs:
        grace = settings.RENDER_QUEUED_STALE_AFTER_S + job_queue_position(job=job)["eta_s"]
        if job.enqueued > now - timedelta(seconds=grace):
            continue
        if job.n_enqueued > settings.RENDER_MAX_REQUEUES:
            if render_job_fail(job_id=job.id, message=NOT_TAKEN_MESSAGE):
                log.warning("job %s failed: queued since %s, no worker took it", job.id,
                            job.enqueued)
                swept += 1
            continue
        # Claim the re-send, so that concurrent sweeps send it once.
        if not RenderJob.objects.filter(id=job.id, state=RenderJob.State.QUEUED,
                                        enqueued=job.enqueued).update(
                enqueued=now, n_enqueued=F("n_enqueued") + 1):
            continue
        try:
            render_job_enqueue(job=job)
        except RenderServiceUnavailable:
            continue  # the next sweep tries again
        log.warning("job %s sent again: queued since %s, no worker took it", job.id, job.enqueued)
        swept += 1
    return swept
