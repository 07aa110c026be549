"""The live stack when its services restart: Redis (idle and mid-render), Daphne while a client
streams, PostgreSQL between two renders.

Real processes throughout (``own_stack``: a Redis and, for PostgreSQL, a database server of the
stack's own, restarted here). After each fault every job ends done or failed with a plain
message, the stored chunks and takes are what was streamed, and the next render works with no
manual step.
"""
from __future__ import annotations

import re
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake

from tests.integration.stack import Client

pytestmark = pytest.mark.timeout(600)
# What a message for the user must not look like: a raw exception, a traceback, an address.
RAW = re.compile(r"Traceback|Exception|[A-Z]\w*Error\b|redis://|postgres(ql)?://|\.py\b")
SOCKET_FAULTS = (ConnectionClosed, InvalidHandshake, OSError, TimeoutError)


def _is_end(m: dict) -> bool:
    return m["type"] == "done" or (m["type"] == "state" and m["state"] in ("failed", "cancelled"))


def stream_through(client: Client, job_id: str, *, fault=None, timeout: float = 240) -> dict:
    """Follow a job's stream as the player does: on a lost socket, reconnect with ?from=<next seq>.

    ``fault()`` is called once, after the first chunk. Returns the chunks received (in arrival
    order), the final message, how many times the socket was opened and why each one broke.
    """
    chunks, end, opened, broken, trace = [], None, 0, [], []  # trace: what each socket received
    deadline = time.monotonic() + timeout
    while end is None:
        assert time.monotonic() < deadline, f"no end of job {job_id} in {timeout} s"
        next_seq = chunks[-1]["seq"] + 1 if chunks else 0
        ending = None  # a failed/cancelled state: the stored chunks may follow, then the close
        try:
            with client.socket(job_id, from_seq=next_seq) as ws:
                opened += 1
                trace.append([])
                while end is None:
                    try:
                        m = ws.recv(max(1.0, deadline - time.monotonic()))
                    except ConnectionClosedOK:
                        if ending is None:
                            raise
                        end = ending
                        break
                    trace[-1].append(m["type"] if m["type"] != "notes" else m["seq"])
                    if m["type"] == "notes":
                        chunks.append(m)
                        if fault is not None:
                            fault, f = None, fault
                            f()
                    elif m["type"] == "done":
                        end = m
                    elif m["type"] == "state":
                        ending = m if _is_end(m) else None
        except SOCKET_FAULTS as exc:
            broken.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.5)  # the page waits before it reconnects too
    return {"chunks": chunks, "end": end, "opened": opened, "broken": broken, "trace": trace}


def assert_in_order_once(chunks: list[dict], n_notes_total: int, *, complete: bool) -> None:
    """Chunks numbered 0, 1, ... without gap or repeat; no note twice; all of them if complete."""
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), "chunks repeated or out of order"
    keys = [(n.get("v", 0), n["i"]) for c in chunks for n in c["notes"]]
    assert len(keys) == len(set(keys)), "a note came twice"
    if complete:
        assert len(keys) == n_notes_total, f"{len(keys)} of {n_notes_total} notes"


def assert_ended_plainly(client: Client, job_id: str, timeout: float = 120) -> dict:
    """The job ends done, or failed with a plain one-line message; returns its status."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/v1/jobs/{job_id}/").json()
        if status["state"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"job still {status['state']} after {timeout} s"
        time.sleep(0.5)
    assert status["state"] in ("done", "failed"), status
    if status["state"] == "failed":
        msg = status["message"] or ""
        assert msg and "\n" not in msg and not RAW.search(msg), msg
    return status


def assert_stored_as_streamed(client: Client, job_id: str, streamed: list[dict]) -> dict:
    """A late listener (from 0) gets exactly the chunks streamed live; a done job's take holds
    the same notes. Returns the late listener's final message."""
    late = stream_through(client, job_id, timeout=60)
    assert late["opened"] == 1, (late["broken"], late["trace"])
    assert [(c["seq"], c["notes"]) for c in late["chunks"]] == [(c["seq"], c["notes"])
                                                               for c in streamed]
    if late["end"]["type"] == "done":  # the first take (variation) of the job
        stored = client.get(late["end"]["notes_url"]).json()["notes"]
        v = stored[0].get("v", 0)
        assert stored == [n for c in streamed for n in c["notes"] if n.get("v", 0) == v]
    return late["end"]


def render_done(client: Client, score_id: str, seed: int) -> dict:
    """Render and stream to the end (no fault); the job must be done and its stream complete."""
    r = client.render(score_id, seed=seed)
    assert r.status_code == 201, r.text
    job_id = r.json()["job_id"]
    got = stream_through(client, job_id, timeout=180)
    assert got["end"]["type"] == "done", got["end"]
    assert_in_order_once(got["chunks"], got["end"]["n_notes"], complete=True)
    return {"job_id": job_id, **got}


@pytest.fixture(scope="module")
def owner(own_stack, good_inputs, big_score) -> tuple[Client, str, str]:
    """(client, small score id, big score id) of one user per fault stack (uploaded once)."""
    c = Client(own_stack).signup(f"f{uuid.uuid4().hex[:10]}")
    return c, c.upload_ok(good_inputs["musicxml"]), c.upload_ok(big_score)


def test_redis_restarted_while_idle_then_a_render_works(own_stack, owner):
    client, small, _ = owner
    before = render_done(client, small, seed=1)
    takes = client.get(f"/scores/{small}/takes.json").json()
    own_stack.redis.stop()
    try:
        down = client.render(small, seed=2)
        assert down.status_code == 503, down.text
        assert down.json() == {"error": "the render service is unavailable, try again"}
        time.sleep(3)  # the worker and Daphne notice the lost connections
    finally:
        own_stack.redis.start()
    assert client.get(f"/scores/{small}/takes.json").json() == takes  # the 503 left no job
    after = render_done(client, small, seed=3)  # no manual step: the first request works
    assert after["opened"] == 1, after["broken"]
    assert_stored_as_streamed(client, before["job_id"], before["chunks"])


def test_redis_restarted_mid_render_ends_the_job_and_the_next_render_works(own_stack, owner):
    client, small, big = owner
    r = client.render(big, seed=4)
    assert r.status_code == 201, r.text
    job_id = r.json()["job_id"]

    def restart_redis():
        own_stack.redis.stop()
        time.sleep(2.5)  # longer than the send retries (1.5 s): a render still going fails
        own_stack.redis.start()

    got = stream_through(client, job_id, fault=restart_redis)
    status = assert_ended_plainly(client, job_id)
    total = status["n_notes_total"]
    assert_in_order_once(got["chunks"], total, complete=status["state"] == "done")
    assert got["end"]["type"] == ("done" if status["state"] == "done" else "state")
    assert status["n_chunks"] == len(got["chunks"])
    assert status["n_notes_done"] == sum(len(c["notes"]) for c in got["chunks"])
    assert_stored_as_streamed(client, job_id, got["chunks"])
    render_done(client, small, seed=5)


def test_daphne_restarted_while_streaming_the_client_resumes_from_its_next_chunk(own_stack,
                                                                                 owner):
    client, _, big = owner
    r = client.render(big, seed=6, controls={"variations": 2})
    assert r.status_code == 201, r.text
    job_id = r.json()["job_id"]
    # A loaded machine (2 cores, a model training) took 45-90 s to start Daphne again.
    got = stream_through(client, job_id, fault=lambda: own_stack.restart_daphne(timeout_s=240),
                         timeout=480)
    assert got["opened"] >= 2, "the socket survived a Daphne restart?"
    assert got["end"]["type"] == "done", got["end"]
    status = assert_ended_plainly(client, job_id)
    assert_in_order_once(got["chunks"], status["n_notes_total"], complete=True)
    assert_stored_as_streamed(client, job_id, got["chunks"])


@pytest.mark.parametrize("own_stack", ["postgresql"], indirect=True)
def test_postgresql_restarted_between_two_renders(own_stack, owner):
    client, small, _ = owner
    first = render_done(client, small, seed=7)
    own_stack.pg.restart()
    second = render_done(client, small, seed=8)  # web and worker reconnect on their own
    assert second["opened"] == 1, second["broken"]
    assert_stored_as_streamed(client, first["job_id"], first["chunks"])
    states = {t["job_id"]: t["state"] for t in client.get(f"/scores/{small}/takes.json").json()}
    assert states[first["job_id"]] == states[second["job_id"]] == "done"
