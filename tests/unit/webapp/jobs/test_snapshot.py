"""What a job's listener is owed (webapp.jobs.selectors.job_stream_snapshot, what the WebSocket
consumer replays on connect and before 'done'): a snapshot with 'done' has every chunk.

The race it closes: a worker stores its last chunks, then the takes ('done'); a listener that
read the chunks before the worker's last writes and 'done' after them got a take without its
tail (seen with 20 listeners and two workers: bench/web_bench.py, 1 listener in 20 in 2 of 3
runs). The worker finishing between the snapshot's reads is made to happen here by running its
writes right after the first read of the snapshot, whichever that is."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

import webapp.jobs.selectors as selectors
from webapp.models import Performance, RenderChunk, RenderJob, Score

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    owner = get_user_model().objects.create_user("listener", password="a-Long-passw0rd!")
    score = Score.objects.create(owner=owner, title="S", original_filename="s.mid", file="scores/s.mid",
                                 parsed="parsed/s.npz", format="midi", n_notes=4, duration_beat=8.0, mei="")
    job = RenderJob.objects.create(score=score, owner=owner, seed=1, controls={}, state=RenderJob.State.RUNNING)
    for seq in range(3):
        RenderChunk.objects.create(job=job, seq=seq, notes=[{"i": seq}], pedal=[])
    return job


def _worker_finishes(job):
    """The worker's last writes: its last chunk, then the take and the state that make 'done'."""
    RenderChunk.objects.create(job=job, seq=3, notes=[{"i": 3}], pedal=[])
    Performance.objects.create(job=job, variation=0, score=job.score, seed=1, notes=[], n_notes=4,
                               duration_sec=1.0, midi="performances/p.mid")
    RenderJob.objects.filter(id=job.id).update(state=RenderJob.State.DONE)


@pytest.mark.parametrize("first_read", ["job_chunks", "job_done_summary"])
def test_a_snapshot_with_done_has_every_chunk_whenever_the_job_ends(job, monkeypatch, first_read):
    real = getattr(selectors, first_read)
    calls = []

    def read_then_worker_finishes(**kw):
        out = real(**kw)
        if not calls:  # the job ends right after the snapshot's first read of these two
            _worker_finishes(job)
        calls.append(first_read)
        return out

    monkeypatch.setattr(selectors, first_read, read_then_worker_finishes)
    state, _, chunks, done = selectors.job_stream_snapshot(job_id=job.id, from_seq=1)
    assert done is None or [c["seq"] for c in chunks] == [1, 2, 3], (state, [c["seq"] for c in chunks])
    # and once it has ended, the snapshot has both
    monkeypatch.undo()
    state, _, chunks, done = selectors.job_stream_snapshot(job_id=job.id, from_seq=1)
    assert state == "done" and done is not None and [c["seq"] for c in chunks] == [1, 2, 3]
