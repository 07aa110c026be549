"""Jobs of different users rendered together by one worker (webapp.jobs.worker's render session):
a job that waits in the queue joins the running one's batched passes, streams its own notes in
order, gets the notes it would get alone, and a cancel ends one job and leaves the others."""
from __future__ import annotations

import time
import uuid

from tests.integration.conftest import BIG_SCORE_NOTES, MEDIUM_SCORE_NOTES
from tests.integration.stack import Client
from webapp.jobs.publisher import MESSAGE_NOTES


def _wait(client: Client, job_id: str, states: set, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v1/jobs/{job_id}/")
        assert r.status_code == 200, (r.status_code, r.text[:300])
        status = r.json()
        if status["state"] in states:
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status['state']} after {timeout} s"
        time.sleep(0.05)


def _complete(msgs: list[dict], n_notes: int, takes: int) -> list[dict]:
    """Every note of every take, chunks numbered without gap; returns the notes."""
    assert msgs[-1]["type"] == "done", msgs[-1]
    chunks = [m for m in msgs if m["type"] == "notes"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    # a message stays under Daphne's 1 MiB, however much piled up (d: 4 takes of 512-note chunks)
    assert max(len(c["notes"]) for c in chunks) <= MESSAGE_NOTES
    notes = [n for c in chunks for n in c["notes"]]
    for v in range(takes):
        assert [n["i"] for n in notes if n.get("v", 0) == v] == list(range(n_notes)), f"take {v}"
    return notes


def test_queued_jobs_join_the_running_one_and_each_gets_its_own_notes(stack, big_user, medium_score,
                                                                       big_score):
    u1, big, medium = big_user
    u2 = Client(stack).signup(f"b{uuid.uuid4().hex[:8]}")
    medium2, big2 = u2.upload_ok(medium_score), u2.upload_ok(big_score)
    # sent while the worker is frozen, all four wait in the queue: the worker starts a (the first
    # sent) and its session takes the others in at its first look at the queue. (Sent one by one
    # while a renders, they raced a's end: one take of 4,000 notes takes the compiled decoder
    # ~0.5 s.) a is long: 8 takes.
    with stack.worker_paused():
        a = u1.render(big, seed=5, controls={"variations": 8}).json()["job_id"]
        b = u2.render(medium2, seed=9, controls={"variations": 2}).json()["job_id"]
        c = u1.render(medium, seed=3, controls={"mode": "perturb", "delta": [1, 0, 0, -1, 0]}).json()["job_id"]
        d = u2.render(big2, seed=11, controls={"variations": 4}).json()["job_id"]
        time.sleep(0.3)   # past RENDER_BATCH_CLAIM_AFTER_S: a session takes a job that has waited
    for job, client in ((a, u1), (b, u2), (c, u1), (d, u2)):
        _wait(client, job, {"running", "done"})
    # cancelling a, in the same passes as the others, ends a alone: they render on to their end
    assert u1.post(f"/api/v1/jobs/{a}/cancel/").json()["state"] == "cancelled"
    assert u2.get(f"/api/v1/jobs/{d}/").json()["state"] == "running", "d ended before the cancel"
    with u2.socket(b) as ws_b, u1.socket(c) as ws_c:
        msgs_b = ws_b.messages_until_end()
        notes_b = _complete(msgs_b, MEDIUM_SCORE_NOTES, takes=2)
        notes_c = _complete(ws_c.messages_until_end(), MEDIUM_SCORE_NOTES, takes=1)
    # each stored take holds exactly its streamed notes, in order (stored from the chunks' text)
    perfs = msgs_b[-1]["performances"]
    assert [p["variation"] for p in perfs] == [0, 1]
    for p in perfs:
        stored = u2.get(p["notes_url"]).json()["notes"]
        assert stored == [n for n in notes_b if n["v"] == p["variation"]], f"take {p['variation']}"
    # all four ran on one worker, in one render session
    rows = {j: stack.sql("SELECT worker FROM webapp_renderjob WHERE id = %s",
                         j.replace("-", "") if stack.db == "sqlite" else j)[0] for j in (a, b, c, d)}
    assert rows[a] == rows[b] == rows[c] == rows[d]
    _wait(u1, a, {"cancelled"})
    with u2.socket(d) as ws_d:
        _complete(ws_d.messages_until_end(timeout=300), BIG_SCORE_NOTES, takes=4)
    # c's notes are those it gets rendered alone (same seed and controls, nothing else running)
    again = u1.render(medium, seed=3, controls={"mode": "perturb", "delta": [1, 0, 0, -1, 0]}).json()["job_id"]
    with u1.socket(again) as ws:
        alone = _complete(ws.messages_until_end(), MEDIUM_SCORE_NOTES, takes=1)
    assert alone == notes_c
    assert notes_b != notes_c  # another user's controls and seed: its own take
    log = stack.worker_log.read_text(errors="replace")
    for joined in (b, c, d):
        assert f"job {joined} joins the render session of job(s) {a}" in log, joined
