"""The live stream of a render under Redis faults and at its end, with real Redis servers.

A channel-layer send survives a Redis restart (retried with backoff); when Redis stays down the
stored chunk is kept and the job ends with a plain message; a render past its time limit ends
with a message; the WebSocket gives a waiting user the queue position and closes once the job
has ended (done, cancelled).
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from scripts.services import RedisServer
from webapp.jobs.events import job_group_send
from webapp.models import Performance, RenderChunk, RenderJob, Score
from webapp.jobs.routing import websocket_urlpatterns
from webapp.jobs.services import render_job_cancel
from webapp.jobs.publisher import STREAM_LOST_MESSAGE, ChunkPublisher
from webapp.jobs.worker import render_job_run

pytestmark = pytest.mark.django_db(transaction=True)


def _layer(settings, url: str) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [url]}}}


@pytest.fixture
def own_redis(tmp_path, settings):
    """A Redis of this test only (it is stopped and restarted), used by the channel layer."""
    with RedisServer(tmp_path / "redis") as server:
        _layer(settings, server.url)
        yield server


def _score(**kw) -> Score:
    return Score.objects.create(title="Etude", original_filename="s.mid", file="scores/s.mid",
                                parsed="parsed/s.npz", format="midi", n_notes=20,
                                duration_beat=8.0, mei="", **kw)


def _job(state="running", **kw) -> RenderJob:
    kw.setdefault("n_notes_total", 20)
    return RenderJob.objects.create(score=_score(), seed=1, state=state, **kw)


def test_a_send_survives_a_redis_restart(own_redis):
    job = RenderJob(id=uuid.uuid4())
    assert job_group_send(job, {"type": "job.state", "state": "running"})
    own_redis.stop()
    threading.Timer(0.3, own_redis.start).start()
    assert job_group_send(job, {"type": "job.state", "state": "running"})


def test_redis_down_keeps_the_chunk_and_ends_with_a_plain_message(own_redis):
    job = _job()
    own_redis.stop()
    t0 = time.monotonic()
    assert not job_group_send(job, {"type": "job.state", "state": "running"})  # no exception
    assert time.monotonic() - t0 < 5
    publisher = ChunkPublisher(job)
    publisher.start()
    publisher.put([{"id": "n1", "p": 60}], [])
    assert publisher.close(timeout_s=30) == 1
    assert publisher.error == STREAM_LOST_MESSAGE and "the notes rendered so far are kept" in publisher.error
    assert RenderChunk.objects.filter(job=job, seq=0).exists()
    publisher = ChunkPublisher(job)   # after a failed send, nothing more is published
    publisher.error = STREAM_LOST_MESSAGE
    publisher.start()
    publisher.put([{"id": "n2", "p": 62}], [])
    assert publisher.close(timeout_s=30) == 0
    assert RenderChunk.objects.filter(job=job).count() == 1


def test_the_publisher_merges_what_piled_up_and_stops_when_the_job_is_ended(own_redis):
    job = _job()
    publisher = ChunkPublisher(job)
    for k in range(5):  # handed over before the thread runs: they pile up and go out as one chunk
        publisher.put([{"id": f"n{k}"}], [{"t": k, "cc": 64, "value": 127, "v": 0}])
    publisher.put([], [])  # nothing: no chunk
    publisher.start()
    publisher.put([{"id": "n5"}], [])
    n = publisher.close(timeout_s=30)
    assert publisher.error is None and not publisher.stopped.is_set()
    chunks = list(RenderChunk.objects.filter(job=job).order_by("seq"))
    assert [c.seq for c in chunks] == list(range(n)) and n in (1, 2)
    assert [x["id"] for x in chunks[0].notes[:5]] == [f"n{k}" for k in range(5)]
    assert [x["id"] for c in chunks for x in c.notes] == [f"n{k}" for k in range(6)]
    assert [e["t"] for e in chunks[0].pedal] == list(range(5))
    job.refresh_from_db()
    assert (job.n_notes_done, job.n_chunks) == (6, n)
    # cancelled meanwhile: the publisher says so and stores nothing more
    RenderJob.objects.filter(id=job.id).update(state="cancelled")
    publisher = ChunkPublisher(job)
    publisher.start()
    publisher.put([{"id": "n6"}], [])
    assert publisher.close(timeout_s=30) == 0 and publisher.stopped.is_set() and publisher.failed
    assert RenderChunk.objects.filter(job=job).count() == n


@pytest.fixture
def real_score(tmp_path, settings) -> Score:
    from tests.data.corpus import make_midi
    from webapp.scores.services import score_create

    settings.MEDIA_ROOT = tmp_path / "media"
    notes = [(60 + i % 12, i * 0.5, 0.5, 70) for i in range(40)]
    return score_create(path=make_midi(tmp_path / "s.mid", notes), original_filename="s.mid",
                        is_demo=True, demo_key="s")


def test_a_render_whose_stream_is_lost_or_too_long_ends_with_a_message(own_redis, real_score,
                                                                        settings):
    settings.RENDER_CHUNK_NOTES = 8
    own_redis.stop()
    job = RenderJob.objects.create(score=real_score, seed=1, n_notes_total=real_score.n_notes)
    assert render_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert job.message == STREAM_LOST_MESSAGE
    assert RenderChunk.objects.filter(job=job).count() == 1  # the chunk stored before the fault
    own_redis.start()
    settings.RENDER_TIME_LIMIT_BASE_S, settings.RENDER_TIME_LIMIT_PER_NOTE_S = 0.0, 0.0
    job = RenderJob.objects.create(score=real_score, seed=1, n_notes_total=real_score.n_notes)
    assert render_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert job.message.startswith("the render took longer than its time limit")


# --- the WebSocket ----------------------------------------------------------------------------

def _ws(user, job_id) -> WebsocketCommunicator:
    c = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/jobs/{job_id}/")
    c.scope["user"] = user
    return c


async def _until_closed(c: WebsocketCommunicator, timeout: float = 10) -> list[dict]:
    """Every JSON message until the server closes the socket (fails if it does not)."""
    import json

    out = []
    while True:
        msg = await c.receive_output(timeout)
        if msg["type"] == "websocket.close":
            return out
        out.append(json.loads(msg["text"]))


@pytest.fixture
def owner():
    return get_user_model().objects.create_user(f"u{uuid.uuid4().hex[:8]}", password="x")


def test_the_socket_closes_after_done(own_redis, owner, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    job = _job(state="done", owner=owner, n_chunks=1)
    RenderChunk.objects.create(job=job, seq=0, notes=[{"id": "n1"}])
    Performance.objects.create(job=job, score=job.score, seed=1, notes=[{"id": "n1"}], n_notes=1,
                               duration_sec=1.0, midi="performances/p.mid")

    async def run():
        c = _ws(owner, job.id)
        assert (await c.connect())[0]
        msgs = await _until_closed(c)
        assert [m["type"] for m in msgs] == ["state", "notes", "done"]

    async_to_sync(run)()


def test_a_queued_job_shows_its_place_and_the_socket_closes_after_a_cancel(own_redis, owner):
    ahead = _job(state="queued", owner=None, n_notes_total=5000)
    job = _job(state="queued", owner=owner)
    assert ahead.created < job.created

    async def run():
        c = _ws(owner, job.id)
        assert (await c.connect())[0]
        assert (await c.receive_json_from(5))["state"] == "queued"
        queue = await c.receive_json_from(5)
        assert queue["type"] == "queue" and queue["position"] == 2 and queue["eta_s"] >= 1
        await database_sync_to_async(render_job_cancel)(job=job)
        msgs = await _until_closed(c)
        assert msgs[-1] == {"type": "state", "state": "cancelled",
                            "message": "cancelled by the user"}

    async_to_sync(run)()


def test_a_listener_gets_the_kept_chunks_before_the_failed_state(own_redis, owner):
    from django.utils import timezone

    from webapp.jobs.lifecycle import render_job_fail

    job = _job(state="running", owner=owner, heartbeat=timezone.now())
    RenderChunk.objects.create(job=job, seq=0, notes=[{"id": "n1"}])

    def lost_chunk_then_fail():  # stored, its live event lost (a Redis blip), then the job fails
        RenderChunk.objects.create(job=job, seq=1, notes=[{"id": "n2"}])
        render_job_fail(job_id=job.id, message=STREAM_LOST_MESSAGE)

    async def run():
        c = _ws(owner, job.id)
        assert (await c.connect())[0]
        assert (await c.receive_json_from(5))["state"] == "running"
        assert (await c.receive_json_from(5))["seq"] == 0
        await database_sync_to_async(lost_chunk_then_fail)()
        msgs = await _until_closed(c)
        assert [(m["type"], m.get("seq"), m.get("state")) for m in msgs] == [
            ("notes", 1, None), ("state", None, "failed")]

    async_to_sync(run)()
