"""Celery tasks (thin: ids in, one service call) and worker start-up hooks."""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from webapp.jobs.events import channel_layer_warm_up
from webapp.jobs.jobrun import render_failure_message
from webapp.jobs.lifecycle import RENDER_TASK, render_job_fail, render_jobs_fail_stale, render_sweeper_start
from webapp.jobs.renderer import renderer_warm_up
from webapp.jobs.worker import render_job_run

log = logging.getLogger(__name__)


@shared_task(name=RENDER_TASK, ignore_result=True, acks_late=True,   # "webapp.tasks.render_job"
             reject_on_worker_lost=True)
def render_job(job_id: str) -> str:
    """Render one RenderJob (streams its chunks, stores its performance).

    Acknowledged once it ends, and delivered again if its worker dies: it starts the job only
    while the job is queued, so a second delivery does nothing.
    """
    try:
        return render_job_run(job_id=job_id)
    except Exception as exc:  # never leave the job queued or running when the task dies
        render_job_fail(job_id=job_id, message=render_failure_message(exc=exc, job_id=job_id))
        raise


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    """Fail the jobs a crashed worker left running and start the periodic queue sweep; load and
    warm the model before the first job."""
    n = render_jobs_fail_stale()
    if n:
        log.warning("failed %d render jobs left running by a stopped worker", n)
    if settings.RENDER_SWEEP_EVERY_S > 0:
        render_sweeper_start(every_s=settings.RENDER_SWEEP_EVERY_S)
    channel_layer_warm_up()
    try:
        log.info("model warmed up in %.2f s", renderer_warm_up())
    except Exception:  # the first job reports the error to its user
        log.exception("the model could not be loaded")
