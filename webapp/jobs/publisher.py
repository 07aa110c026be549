"""Chunk publishing off the decode path: a render's notes are stored and sent by a thread of their
own, in order, while the model goes on decoding.

Each published chunk is first stored (RenderChunk, with the job's counters) and then sent to the
job's group, as the WebSocket message's JSON text that consumers relay unchanged: a client that
reconnects reads the stored chunks and then the live ones, so nothing is sent before it is
stored. When the thread falls behind (a slow database or Redis), what has piled up goes out as
one chunk: fewer, larger writes instead of a growing queue.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time

from django.db import connection, transaction
from django.utils import timezone

from webapp.jobs.events import job_group_send
from webapp.models import RenderChunk, RenderJob

log = logging.getLogger(__name__)
_CLOSE = object()
STREAM_LOST_MESSAGE = ("the connection to the live stream was lost (the message service did not "
                       "answer); the notes rendered so far are kept; press Render to try again")


def job_still_running(job_id) -> bool:
    """False once the job was cancelled (or failed by the stale-job sweep): stop rendering."""
    return RenderJob.objects.filter(id=job_id, state=RenderJob.State.RUNNING).exists()


class ChunkPublisher(threading.Thread):
    """Store-then-send of a job's chunks in a thread (see module docstring).

    ``put(notes, pedal)`` hands over NOTE and PEDAL dicts; ``close()`` waits until everything is
    out and returns the number of chunks published. ``stopped`` is set once the job was ended by
    someone else (cancelled, failed by the sweep): the decode loop should stop. ``error`` holds
    a message when a stored chunk could not be sent (the Redis retries exhausted).
    """

    def __init__(self, job: RenderJob):
        super().__init__(daemon=True, name=f"publish-{job.id}")
        self.job = job
        self.q: queue.Queue = queue.Queue()
        self.seq = 0
        self.n_notes = job.n_notes_done
        self.stopped = threading.Event()
        self.error: str | None = None
        self.timing = {"store_s": 0.0, "send_s": 0.0, "check_s": 0.0}

    def put(self, notes: list[dict], pedal: list[dict]) -> None:
        if notes or pedal:
            self.q.put((notes, pedal))

    def close(self, timeout_s: float | None = None) -> int:
        self.q.put(_CLOSE)
        self.join(timeout_s)
        return self.seq

    @property
    def failed(self) -> bool:
        return self.error is not None or self.stopped.is_set()

    def run(self) -> None:
        try:
            done = False
            while not done:
                items = [self.q.get()]
                while True:  # whatever else is waiting goes out with it
                    try:
                        items.append(self.q.get_nowait())
                    except queue.Empty:
                        break
                done = any(it is _CLOSE for it in items)
                batch = [it for it in items if it is not _CLOSE]
                if not batch or self.failed:
                    continue  # after a stop: drain without publishing
                notes = [n for ns, _ in batch for n in ns]
                pedal = [e for _, ev in batch for e in ev]
                self._publish(notes, pedal)
        except Exception as exc:  # the decode loop reports it as the job's failure
            log.exception("job %s: publishing chunk %d failed", self.job.id, self.seq)
            self.error = f"the notes could not be stored ({type(exc).__name__}); press Render to try again"
        finally:
            connection.close()  # this thread's own database connection

    def _publish(self, notes: list[dict], pedal: list[dict]) -> None:
        t0 = time.perf_counter()
        running = job_still_running(self.job.id)
        t1 = time.perf_counter()
        self.timing["check_s"] += t1 - t0
        if not running:
            log.info("job %s ended by someone else at chunk %d", self.job.id, self.seq)
            self.stopped.set()
            return
        with transaction.atomic():
            RenderChunk.objects.create(job=self.job, seq=self.seq, notes=notes, pedal=pedal)
            self.n_notes += len(notes)
            RenderJob.objects.filter(id=self.job.id).update(n_notes_done=self.n_notes, n_chunks=self.seq + 1,
                                                            heartbeat=timezone.now())
        t2 = time.perf_counter()
        self.timing["store_s"] += t2 - t1
        # the WebSocket message encoded once here: the channel layer carries one string and every
        # consumer relays it as is (instead of packing the note dicts into Redis and each Daphne
        # unpacking them and encoding JSON again for each listener)
        text = json.dumps({"type": "notes", "seq": self.seq, "notes": notes, "pedal": pedal}, separators=(",", ":"))
        sent = job_group_send(self.job, {"type": "job.notes", "seq": self.seq, "text": text})
        self.timing["send_s"] += time.perf_counter() - t2
        self.seq += 1
        if not sent:
            self.error = STREAM_LOST_MESSAGE
