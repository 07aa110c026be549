"""Render requests and the render queue under Redis faults, with a real Redis (no Celery worker:
what is queued is read from the broker's list).

Redis down at request time (503, nothing left), lost queued messages (sent again, then failed),
the per-address limit of anonymous renders, the time limit sent with each task, acks_late, and a
cancel that sends no revoke (the worker's revoke handler asks the absent result backend).
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from django.test import Client

from config.celery import app as celery_app
from scripts.services import free_port
from webapp.jobs.lifecycle import NOT_TAKEN_MESSAGE, render_sweeper_start, render_time_limit
from webapp.models import RenderJob, Score
from webapp.jobs.services import render_job_cancel
from webapp.jobs.lifecycle import render_jobs_fail_stale
from webapp.jobs.tasks import render_job

pytestmark = pytest.mark.django_db(transaction=True)


def _use_broker(url: str) -> None:
    """Point the Celery app at ``url`` (its pools are made again for the new URL)."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.broker_url = url


@pytest.fixture
def broker(redis_server, settings, tmp_path):
    url = redis_server.rsplit("/", 1)[0] + "/5"
    settings.MEDIA_ROOT = tmp_path
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [url]}}}
    old = celery_app.conf.broker_url
    _use_broker(url)
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()
    _use_broker(old)


def _score(n_notes: int = 100) -> Score:
    return Score.objects.create(title="Etude", original_filename="s.mid", file="scores/s.mid",
                                parsed="parsed/s.npz", format="midi", n_notes=n_notes,
                                duration_beat=8.0, mei="", is_demo=True,
                                demo_key=uuid.uuid4().hex)


def _queued(r) -> list[dict]:
    return [json.loads(m) for m in r.lrange("render", 0, -1)]


def test_redis_down_answers_503_and_leaves_no_job(broker):
    score = _score()
    _use_broker(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    c = Client()
    r = c.post(f"/api/v1/scores/{score.id}/render/", data={"seed": "3"})
    assert r.status_code == 503
    assert r.json() == {"error": "the render service is unavailable, try again"}
    assert RenderJob.objects.count() == 0


def test_a_render_is_queued_with_a_time_limit_scaled_to_its_size(broker):
    small, big = _score(100), _score(5000)
    c = Client()
    assert c.post(f"/api/v1/scores/{small.id}/render/", data={"seed": "1"}).status_code == 201
    assert c.post(f"/api/v1/scores/{big.id}/render/", data={"seed": "1"}).status_code == 201
    limits = {m["headers"]["id"]: m["headers"]["timelimit"] for m in _queued(broker)}
    jobs = {j.celery_task_id: j for j in RenderJob.objects.all()}
    assert set(limits) == set(jobs)
    for task_id, (hard, soft) in limits.items():
        assert soft == render_time_limit(n_notes=jobs[task_id].n_notes_total)
        assert hard > soft
    assert len({tuple(v) for v in limits.values()}) == 2  # the bigger score gets longer
    assert render_job.acks_late and render_job.reject_on_worker_lost


def test_anonymous_renders_are_limited_per_address(broker, settings):
    settings.RENDER_MAX_CONCURRENT_PER_ADDRESS = 3
    score = _score()
    codes = [Client().post(f"/api/v1/scores/{score.id}/render/").status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]  # four cookie-less clients, one address
    r = Client().post(f"/api/v1/scores/{score.id}/render/")
    assert r.status_code == 429 and "network address" in r.json()["error"]
    other = Client(REMOTE_ADDR="10.0.0.9")
    assert other.post(f"/api/v1/scores/{score.id}/render/").status_code == 201
    assert RenderJob.objects.count() == 4


def test_a_lost_queued_job_is_sent_again_then_failed(broker, settings):
    settings.RENDER_QUEUED_STALE_AFTER_S = 0.3
    settings.RENDER_MAX_REQUEUES = 1
    score = _score()
    c = Client()
    assert c.post(f"/api/v1/scores/{score.id}/render/").status_code == 201
    job = RenderJob.objects.get()
    broker.delete("render")  # the message is lost (a Redis restart without its data)
    assert render_jobs_fail_stale() == 0  # not yet past its grace time
    time.sleep(0.5)
    assert render_jobs_fail_stale() == 1
    job.refresh_from_db()
    assert job.state == "queued" and job.n_enqueued == 2
    assert [m["headers"]["id"] for m in _queued(broker)] == [job.celery_task_id]
    broker.delete("render")
    time.sleep(0.5)
    assert render_jobs_fail_stale(job_ids=[job.id]) == 1
    job.refresh_from_db()
    assert job.state == "failed" and job.message == NOT_TAKEN_MESSAGE
    # The user's render slots are free again.
    assert c.post(f"/api/v1/scores/{score.id}/render/").status_code == 201
    assert c.post(f"/api/v1/scores/{score.id}/render/").status_code == 201


def test_the_periodic_sweep_sends_a_lost_job_again_with_nobody_watching(broker, settings):
    settings.RENDER_QUEUED_STALE_AFTER_S = 0.3
    score = _score()
    assert Client().post(f"/api/v1/scores/{score.id}/render/").status_code == 201
    job = RenderJob.objects.get()
    broker.delete("render")
    stop = render_sweeper_start(every_s=0.2)  # the worker's thread; no view or socket polls
    try:
        deadline = time.monotonic() + 20
        while not _queued(broker):  # the sweeper counts the send, then sends
            assert time.monotonic() < deadline, "the sweeper did not send the lost job again"
            time.sleep(0.1)
    finally:
        stop.set()
    assert [m["headers"]["id"] for m in _queued(broker)] == [job.celery_task_id]
    assert RenderJob.objects.get(id=job.id).n_enqueued == 2
    assert RenderJob.objects.get(id=job.id).state == "queued"


def test_cancel_sends_no_revoke_and_the_task_then_does_nothing(broker):
    from webapp.jobs.worker import render_job_run

    score = _score()
    c = Client()
    job_id = c.post(f"/api/v1/scores/{score.id}/render/").json()["job_id"]
    pubsub = broker.pubsub()
    pubsub.psubscribe("*")
    assert pubsub.get_message(timeout=1)["type"] == "psubscribe"
    render_job_cancel(job=RenderJob.objects.get(id=job_id))
    got = [pubsub.get_message(timeout=0.5) for _ in range(3)]
    pubsub.close()
    # a revoke is broadcast on the pidbox channel; channel-layer group sends are not pub/sub
    assert not [m for m in got if m and b"pidbox" in m["channel"]], got
    assert render_job_run(job_id=job_id) == "cancelled"
    assert RenderJob.objects.get(id=job_id).started is None
