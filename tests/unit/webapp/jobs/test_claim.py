"""Render sessions take queued jobs into their batched passes (webapp.jobs.lifecycle.
render_jobs_claim): each worker rendering now takes a fair share of what waits, so that jobs
submitted together spread over the workers instead of filling the first one's batch."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from webapp.jobs.lifecycle import render_jobs_claim
from webapp.models import RenderJob, Score

pytestmark = pytest.mark.django_db


@pytest.fixture
def score():
    owner = get_user_model().objects.create_user("claimer", password="a-Long-passw0rd!")
    return Score.objects.create(owner=owner, title="S", original_filename="s.mid", file="scores/s.mid",
                                parsed="parsed/s.npz", format="midi", n_notes=10, duration_beat=8.0, mei="")


def _job(score, state, worker="", waited_s=1.0):
    return RenderJob.objects.create(score=score, owner=score.owner, seed=1, controls={}, state=state,
                                    worker=worker, enqueued=timezone.now() - timedelta(seconds=waited_s))


def test_two_busy_workers_share_the_waiting_jobs(score):
    _job(score, RenderJob.State.RUNNING, "w1")
    _job(score, RenderJob.State.RUNNING, "w2")
    waiting = [_job(score, RenderJob.State.QUEUED) for _ in range(6)]
    first = render_jobs_claim(worker="w1", limit=7, waited_s=0.2)
    assert len(first) == 3 and [j.id for j in first] == [j.id for j in waiting[:3]]  # oldest first
    assert len(render_jobs_claim(worker="w2", limit=7, waited_s=0.2)) == 2   # half of the 3 left, rounded up
    assert len(render_jobs_claim(worker="w1", limit=4, waited_s=0.2)) == 1
    assert RenderJob.objects.filter(state=RenderJob.State.QUEUED).count() == 0
    assert RenderJob.objects.filter(worker="w1").count() == 5 and RenderJob.objects.filter(worker="w2").count() == 3


def test_one_worker_takes_what_waits_up_to_its_room_and_not_the_newest(score):
    _job(score, RenderJob.State.RUNNING, "w1")
    for _ in range(5):
        _job(score, RenderJob.State.QUEUED)
    fresh = _job(score, RenderJob.State.QUEUED, waited_s=0.0)   # an idle worker may receive it first
    assert len(render_jobs_claim(worker="w1", limit=4, waited_s=0.2)) == 4
    assert len(render_jobs_claim(worker="w1", limit=4, waited_s=0.2)) == 1
    fresh.refresh_from_db()
    assert fresh.state == RenderJob.State.QUEUED
