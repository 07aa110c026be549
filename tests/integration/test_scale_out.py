"""Several web processes and workers (README, "several machines"): two Daphne processes and two
Celery workers against one PostgreSQL database and one Redis. Jobs spread over both workers, and a
listener on either Daphne gets every note of a job that either worker runs, in order.
"""
from __future__ import annotations

import uuid

import pytest

from scripts.services import free_port
from tests.integration.conftest import MEDIUM_SCORE_NOTES, STACK_ENV
from tests.integration.stack import Client, Stack


@pytest.fixture(scope="module")
def two_of_each(redis_server, model_checkpoint, tmp_path_factory):
    """(stack, second site, {worker pid: node}): Daphne A + worker A are the stack's own."""
    stack = Stack(tmp_path_factory.mktemp("scale-out"), db="postgresql",
                  redis_url=redis_server.rsplit("/", 1)[0] + "/6", port=free_port(),
                  env=dict(STACK_ENV, MODEL_CHECKPOINT=model_checkpoint, RENDER_MAX_CONCURRENT_PER_USER="4"))
    try:
        stack.start()
        site_b = stack.add_daphne(free_port())
        stack.add_worker("it-second")
        workers = {stack.worker.pid: "first", stack.extra[-1].pid: "second"}
        yield stack, site_b, workers
    finally:
        stack.stop()


def _same_session(client: Client, site) -> Client:
    """The same browser session talking to another web process (cookies are per host)."""
    other = Client(site)
    other.s = client.s
    return other


def _complete(msgs, n_notes):
    chunks = [m for m in msgs if m["type"] == "notes"]
    assert msgs[-1]["type"] == "done", msgs[-1]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), "chunks out of order or gapped"
    notes = [n for c in chunks for n in c["notes"]]
    assert sorted(n["i"] for n in notes) == list(range(n_notes)), "notes missing or repeated"
    return notes


def test_jobs_spread_over_two_workers_and_either_daphne_streams_every_note(two_of_each, medium_score):
    stack, site_b, workers = two_of_each
    # Two users, one on each web process, each with two renders queued at once.
    a = Client(stack).signup(f"a{uuid.uuid4().hex[:8]}")
    b = Client(site_b).signup(f"b{uuid.uuid4().hex[:8]}")
    jobs = []
    for user in (a, b):
        score = user.upload_ok(medium_score)
        for seed in (1, 2):
            r = user.render(score, seed=seed)
            assert r.status_code == 201, r.text
            jobs.append((user, r.json()["job_id"]))
    # Each job is followed live on both web processes at once: the chunks reach a listener on
    # the process that did not take the request, through the Redis channel layer.
    streams = {}
    for user, job_id in jobs:
        here = user.socket(job_id)
        there = _same_session(user, stack if user is b else site_b).socket(job_id)
        streams[job_id] = (here, there)
    streamed = {}
    for job_id, (here, there) in streams.items():
        with here, there:
            streamed[job_id] = _complete(here.messages_until_end(), MEDIUM_SCORE_NOTES)
            assert _complete(there.messages_until_end(), MEDIUM_SCORE_NOTES) == streamed[job_id]
    # Which worker ran each job: the worker column holds hostname:pid of the process.
    ran = {}
    for _, job_id in jobs:
        (worker, state), = stack.sql("SELECT worker, state FROM webapp_renderjob WHERE id = %s", job_id)
        assert state == "done"
        ran[job_id] = workers[int(worker.rsplit(":", 1)[1])]
    assert set(ran.values()) == {"first", "second"}, f"all four jobs ran on one worker: {ran}"
    # A replay after the end, from the other process than the one that made the request.
    user, job_id = jobs[-1]
    with _same_session(user, stack).socket(job_id) as ws:
        assert _complete(ws.messages_until_end(), MEDIUM_SCORE_NOTES) == streamed[job_id]
