"""The worker's side of a render: a session that runs the model over several jobs' scores at
once and streams each job's notes.

`render_job_run` is the one service the Celery task calls. It starts the job it was given and,
while that one renders, claims other jobs that have waited in the queue (up to
RENDER_BATCH_MAX, oldest first): all of them advance chunk by chunk in one batched model pass
(ml.streams), as the takes of one job do, so users rendering at once are served together rather
than one after another. Each job streams its own notes in order, can be cancelled alone, and
fails alone (webapp.jobs.jobrun). The model is loaded once per worker process (webapp.jobs.renderer).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from django.conf import settings
from django.db import connection
from django.utils import timezone

from webapp.errors import RenderStopped
from webapp.jobs.events import job_group_send, job_state_event
from webapp.jobs.jobrun import JobRun, render_failure_message, render_job_fail_with  # noqa: F401 (re-exported)
from webapp.jobs.lifecycle import render_jobs_claim
from webapp.jobs.publisher import STREAM_LOST_MESSAGE  # noqa: F401 (re-exported)
from webapp.jobs.renderer import get_renderer
from webapp.models import RenderJob

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 2.0


def worker_name() -> str:
    """This process's name as stored on the jobs it runs (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat(threading.Thread):
    """Touches the heartbeat of the session's running jobs every few seconds (also during long
    steps), so that the stale-job sweep leaves them alone."""

    def __init__(self, session: RenderSession):
        super().__init__(daemon=True)
        self.session, self.stop = session, threading.Event()

    def run(self):
        try:
            while not self.stop.wait(HEARTBEAT_EVERY_S):
                ids = self.session.job_ids  # a frozenset, replaced (never changed) by the session
                RenderJob.objects.filter(id__in=list(ids)).update(heartbeat=timezone.now())
        finally:
            connection.close()


def _drop_unusable_connection() -> None:
    """Close this thread's database connection if it stopped working (the database restarted);
    a working one is kept (CELERY_DB_REUSE_MAX): reconnecting for every job cost ~5 ms."""
    if connection.connection is not None and (connection.errors_occurred or not connection.is_usable()):
        connection.close()


def render_job_run(*, job_id: uuid.UUID | str, worker: str | None = None) -> str:
    """Render one job, with the queued jobs this worker claims meanwhile (see module docstring):
    stream chunks (stored, then sent to each job's group), store the performances.

    Parameters
    ----------
    job_id : UUID or str
    worker : str, optional
        Name of this worker (hostname:pid), stored on the jobs for the stale-job sweep.

    Returns
    -------
    str
        The final state of job ``job_id``.
    """
    _drop_unusable_connection()
    worker = worker or worker_name()
    started = RenderJob.objects.filter(id=job_id, state=RenderJob.State.QUEUED).update(
        state=RenderJob.State.RUNNING, started=timezone.now(), heartbeat=timezone.now(), worker=worker)
    job = RenderJob.objects.select_related("score").get(id=job_id)
    if not started:
        log.info("job %s not started: it is %s", job_id, job.state)
        return job.state
    RenderSession(worker).run(first=job)
    return RenderJob.objects.get(id=job_id).state


class RenderSession:
    """The jobs one worker renders together: each pass decodes the next chunk of every one."""

    def __init__(self, worker: str):
        self.worker, self.runs, self.job_ids = worker, [], frozenset()
        self.finishers: list[threading.Thread] = []   # jobs storing their takes
        self.t0 = self.last_claim = time.monotonic()
        self.n_jobs = 0

    def run(self, *, first: RenderJob) -> None:
        beat = _Heartbeat(self)
        self.job_ids = frozenset([first.id])
        beat.start()
        try:
            self._add(first)
            while True:
                self._claim()
                if not self.runs:
                    break
                self._pass()
            for t in self.finishers:
                t.join()
        finally:
            for r in self.runs:  # an interrupt (a shutdown): end them
                r.fail(RenderStopped("the render was interrupted (the render worker is stopping); "
                                     "press Render to try again"))
            beat.stop.set()
            beat.join(timeout=5)
        if self.n_jobs > 1:
            log.info("render session: %d jobs in %.2f s", self.n_jobs, time.monotonic() - self.t0)

    def _add(self, job: RenderJob) -> None:
        """Start a claimed job's render; a job that cannot start fails alone."""
        self.job_ids = self.job_ids | {job.id}
        self.n_jobs += 1
        job_group_send(job, job_state_event(job))
        try:
            self.runs.append(JobRun(job))
        except Exception as exc:
            render_job_fail_with(job=job, exc=exc)
            self.job_ids = self.job_ids - {job.id}

    def _claim(self) -> None:
        """Take queued jobs into this session (at most every RENDER_BATCH_POLL_S, while it is
        younger than RENDER_SESSION_MAX_S). Only jobs that have waited RENDER_BATCH_CLAIM_AFTER_S
        are taken: an idle worker receives a new job first."""
        room = settings.RENDER_BATCH_MAX - len(self.runs)
        now = time.monotonic()
        if (room <= 0 or now - self.last_claim < settings.RENDER_BATCH_POLL_S
                or now - self.t0 > settings.RENDER_SESSION_MAX_S):
            return
        self.last_claim = now
        for job in render_jobs_claim(worker=self.worker, limit=room,
                                     waited_s=settings.RENDER_BATCH_CLAIM_AFTER_S):
            log.info("job %s joins the render session of job(s) %s", job.id,
                     ", ".join(str(r.job.id) for r in self.runs) or "-")
            self._add(job)

    def _pass(self) -> None:
        """One batched model pass over every job of the session; a job that fails leaves it."""
        t0 = time.perf_counter()
        try:
            chunks = get_renderer().step([r.stream for r in self.runs])
        except Exception as exc:  # the shared pass itself: every job in it fails
            for r in self.runs:
                self._end(r, exc)
            return
        model_s = time.perf_counter() - t0
        for r, chunk in zip(list(self.runs), chunks):
            try:
                if r.feed(chunk, model_s):
                    self._end(r)
            except Exception as exc:
                self._end(r, exc)

    def _end(self, r: JobRun, exc: Exception | None = None) -> None:
        self.runs.remove(r)
        if r.finisher is not None:  # still running: its heartbeat goes on until it has stored
            self.finishers.append(r.finisher)
        else:
            self.job_ids = self.job_ids - {r.job.id}
        if exc is not None:
            r.fail(exc)
