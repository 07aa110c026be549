"""Writes of the render queue: sending jobs to the workers, failing them, sweeping lost jobs.

Everything here survives a Redis that is down or restarting: a job that cannot be sent raises
`RenderServiceUnavailable` (the views answer 503), its listeners are told through
webapp.jobs.events (retried, never raising), and a queued job whose broker message was lost is
sent again, then failed with a message, by `render_jobs_sweep_queued`; a running job whose
worker stopped is failed by `render_jobs_fail_stale`.

Jobs are sent by task name: the web process does not import the worker's task module
(webapp.jobs.tasks), which in turn uses this one.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F, Q
from django.utils import timezone

from config.celery import app as celery_app
from webapp.errors import RenderServiceUnavailable
from webapp.jobs.events import BROKER_ERRORS, job_group_send, job_state_event
from webapp.jobs.selectors import job_queue_position
from webapp.models import RenderJob

log = logging.getLogger(__name__)
RENDER_TASK = "webapp.tasks.render_job"   # the registered name of webapp.jobs.tasks.render_job (kept from
# before the move into webapp.jobs: messages queued by an older web process still find it)
UNAVAILABLE_MESSAGE = "the render service is unavailable, try again"
NOT_TAKEN_MESSAGE = ("no render worker took this job (the render service was restarted or is "
                     "overloaded); press Render to try again")
STALE_MESSAGE = ("the render worker stopped (it crashed or was shut down) before finishing; "
                 "press Render to try again")


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
    limit = render_time_limit(n_notes=job.n_notes_total)
    try:
        celery_app.send_task(RENDER_TASK, args=[str(job.id)], task_id=job.celery_task_id,
                             queue="render", soft_time_limit=limit, time_limit=limit + 30)
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


def render_jobs_claim(*, worker: str, limit: int, waited_s: float) -> list[RenderJob]:
    """Start up to ``limit`` queued jobs on ``worker`` (oldest first) that were sent at least
    ``waited_s`` seconds ago: a render session takes them into its batched passes. Each claim is
    a conditional update, so a job is claimed once however many workers look; its broker
    message, when delivered, finds it started and does nothing.

    Returns the claimed jobs (with their scores), running.
    """
    if limit <= 0:
        return []
    now = timezone.now()
    waiting = RenderJob.objects.filter(state=RenderJob.State.QUEUED, enqueued__lte=now - timedelta(seconds=waited_s))
    ids = list(waiting.order_by("created").values_list("id", flat=True)[:limit])
    if not ids:  # the usual answer of a session's poll: one query
        return []
    # A fair share of what waits among the workers rendering now (this one included): a session
    # that took every waiting job left the other workers idle (two workers, 8 jobs at once: 1.09x
    # one worker's throughput, bench/web_bench.py).
    busy = RenderJob.objects.filter(state=RenderJob.State.RUNNING).exclude(worker="").values("worker").distinct()
    ids = ids[:-(-waiting.count() // max(1, busy.count()))]
    claimed = [i for i in ids if RenderJob.objects.filter(id=i, state=RenderJob.State.QUEUED).update(
        state=RenderJob.State.RUNNING, started=now, heartbeat=now, worker=worker)]
    return list(RenderJob.objects.select_related("score").filter(id__in=claimed).order_by("created"))


def render_jobs_fail_stale(*, job_ids=None, worker: str | None = None) -> int:
    """End as failed the running jobs whose worker stopped sending heartbeats; send again, or
    fail, the queued jobs that no worker took (`render_jobs_sweep_queued`).

    Parameters
    ----------
    job_ids : iterable of UUID, optional
        Only look at these jobs.
    worker : str, optional
        Fail every running job of this worker name (it has just restarted, so they are orphans).

    Returns
    -------
    int
        How many jobs were failed or sent again.
    """
    if job_ids is not None:
        job_ids = list(job_ids)
    swept = render_jobs_sweep_queued(job_ids=job_ids)
    limit = timezone.now() - timedelta(seconds=settings.RENDER_STALE_AFTER_S)
    qs = RenderJob.objects.filter(state=RenderJob.State.RUNNING)
    if job_ids is not None:
        qs = qs.filter(id__in=job_ids)
    cond = Q(heartbeat__lt=limit) | Q(heartbeat__isnull=True, started__lt=limit)
    if worker:
        cond |= Q(worker=worker)
    failed = 0
    for job in qs.filter(cond):
        n = RenderJob.objects.filter(id=job.id, state=RenderJob.State.RUNNING).update(
            state=RenderJob.State.FAILED, message=STALE_MESSAGE, finished=timezone.now())
        if n:
            failed += 1
            job.state, job.message = RenderJob.State.FAILED, STALE_MESSAGE
            log.warning("job %s failed: worker %s stopped", job.id, job.worker or "?")
            job_group_send(job, job_state_event(job))
    return failed + swept


def render_sweeper_start(*, every_s: float) -> threading.Event:
    """Sweep the queue (`render_jobs_fail_stale`) every ``every_s`` seconds in a daemon thread of
    this process, so that a lost job is sent again or failed even when nobody watches it (the
    views, the sockets and a worker's start sweep too). Each worker runs one: the sweep's
    conditional updates make concurrent sweeps send or fail a job once.

    Returns the event that stops the thread. A database or Redis fault skips one round.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            try:
                n = render_jobs_fail_stale()
                if n:
                    log.warning("periodic sweep: %d render jobs sent again or failed", n)
            except Exception as exc:  # the database restarting: try again next round
                log.warning("periodic sweep skipped: %s: %s", type(exc).__name__, exc)
                connection.close()
            finally:
                close_old_connections()
        connection.close()

    threading.Thread(target=run, name="render-sweeper", daemon=True).start()
    return stop


def web_process_warm_up() -> None:
    """Open the broker connection of this web process and import the render request's modules
    before the first Render click (that click otherwise pays for them: ~0.7 s measured by
    bench/first_sound.py). Run in a thread at start-up (config/asgi.py); never raises."""
    try:
        import django.urls

        django.urls.get_resolver().url_patterns  # noqa: B018 (the URLconf and its views, imported)
        celery_app.backend  # noqa: B018 (send_task asks for it: ~50 ms of imports on the first send)
        celery_app.amqp.router  # noqa: B018
        celery_app.amqp.send_task_message  # noqa: B018 (its sender, made on first use)
        with celery_app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1)
            producer.channel  # noqa: B018 (opens it)
    except Exception as exc:  # a broker down now is reported by the first render request
        log.info("web process warm-up incomplete: %s: %s", type(exc).__name__, exc)
