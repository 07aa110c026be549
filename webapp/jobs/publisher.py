"""Chunk publishing off the decode path: a render's notes are stored and sent by a thread of their
own, in order, while the model goes on decoding.

Each published chunk is encoded once, stored (RenderChunk, with the job's counters, only while the
job runs) and then sent to the job's group, as the WebSocket message's JSON text that consumers
relay unchanged; the stored takes reuse that text too (`take_notes_text`). A client that
reconnects reads the stored chunks and then the live ones, so nothing is sent before it is
stored. When the thread falls behind (a slow database or Redis), what has piled up goes out as
one chunk (fewer, larger writes instead of a growing queue) of at most MESSAGE_NOTES notes.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from django.db import connection, transaction
from django.utils import timezone

from webapp.jobs.events import job_group_send
from webapp.jobs.notes import notes_message_text
from webapp.jsontext import EncodedJSON, json_text
from webapp.models import RenderChunk, RenderJob

log = logging.getLogger(__name__)
_CLOSE = object()
# The most notes in one message (~250 kB of JSON): what piled up, or one model chunk of several
# takes (512 notes x 8 takes), goes out in pieces. Daphne refuses to send a WebSocket message over
# 1 MiB (its websocket_max_message_size), and a replay of such a chunk closed the socket (1011).
MESSAGE_NOTES = 1024
STREAM_LOST_MESSAGE = ("the connection to the live stream was lost (the message service did not "
                       "answer); the notes rendered so far are kept; press Render to try again")


class ChunkPublisher(threading.Thread):
    """Store-then-send of a job's chunks in a thread (see module docstring).

    ``put(notes, pedal)`` hands over NOTE and PEDAL dicts; ``close()`` waits until everything is
    out and returns the number of chunks published; ``finish(then)`` instead runs ``then()`` on
    this thread once everything is out (and the thread ends). ``stopped`` is set once the job was ended by
    someone else (cancelled, failed by the sweep): the decode loop should stop. ``error`` holds
    a message when a stored chunk could not be sent (the Redis retries exhausted).
    """

    def __init__(self, job: RenderJob, convert=None):
        super().__init__(daemon=True, name=f"publish-{job.id}")
        self.job, self.convert = job, convert
        self.q: queue.Queue = queue.Queue()
        self.seq = 0
        self.n_notes = job.n_notes_done
        self.stopped = threading.Event()
        self.error: str | None = None
        self.timing = {"convert_s": 0.0, "encode_s": 0.0, "store_s": 0.0, "send_s": 0.0}
        self.take_parts: dict[int, list[str]] = {}   # take -> its notes' JSON per chunk, brackets off
        self.t_start = time.perf_counter()
        self.then = None   # finish()'s callable
        self.t_finish = 0.0

    def put(self, notes: list[dict], pedal: list[dict]) -> None:
        if notes or pedal:
            self.q.put((notes, pedal))

    def put_chunk(self, chunk) -> None:
        """Hand over a decoded chunk as it is: ``convert(chunk) -> (notes, pedal)`` makes its
        NOTE and PEDAL dicts on this thread, in order (off the decode loop's thread)."""
        self.q.put(chunk)

    def close(self, timeout_s: float | None = None) -> int:
        self.q.put(_CLOSE)
        self.join(timeout_s)
        return self.seq

    def finish(self, then) -> None:
        """Publish what is queued, then call ``then()`` on this thread (its database connection
        is open already: a job's takes are stored without a thread or a connection of their
        own); ``then`` reports its own failures. Returns at once."""
        self.then, self.t_finish = then, time.perf_counter()
        self.q.put(_CLOSE)

    @property
    def failed(self) -> bool:
        return self.error is not None or self.stopped.is_set()

    def run(self) -> None:
        try:
            connection.ensure_connection()   # opened while the model decodes the first chunk
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
                t0 = time.perf_counter()
                batch = [it if isinstance(it, tuple) else self.convert(it) for it in batch]
                self.timing["convert_s"] += time.perf_counter() - t0
                notes, pedal = [n for ns, _ in batch for n in ns], [e for _, ev in batch for e in ev]
                for k in range(0, max(1, len(notes)), MESSAGE_NOTES):   # the pedal with the last piece
                    self.publish(notes[k:k + MESSAGE_NOTES], pedal if k + MESSAGE_NOTES >= len(notes) else [])
                    if self.failed:
                        break
        except Exception as exc:  # the decode loop (or `then`) reports it as the job's failure
            log.exception("job %s: publishing chunk %d failed", self.job.id, self.seq)
            self.error = f"the notes could not be stored ({type(exc).__name__}); press Render to try again"
        try:
            if self.then is not None:
                self.timing["publish_wait_s"] = time.perf_counter() - self.t_finish
                self.then()
        finally:
            connection.close()  # this thread's own database connection

    def publish(self, notes: list[dict], pedal: list[dict]) -> None:
        """Store and send one chunk now (on this thread: `run`, or `finish`'s ``then``)."""
        t0 = time.perf_counter()
        # encoded once: the stored row, the WebSocket message and (joined per take) the stored
        # performance all use this text; a chunk's notes go take by take
        by_take: dict[int, list[dict]] = {}
        for n in notes:
            by_take.setdefault(n.get("v", 0), []).append(n)
        parts = {v: json_text(ns)[1:-1] for v, ns in by_take.items()}
        notes_text, pedal_text = "[" + ",".join(parts.values()) + "]", json_text(pedal)
        t1 = time.perf_counter()
        self.timing["encode_s"] += t1 - t0
        with transaction.atomic():
            # the job's counters first, on the condition that it still runs: a cancelled job
            # stores nothing more (one query instead of a check and an update)
            running = RenderJob.objects.filter(id=self.job.id, state=RenderJob.State.RUNNING).update(
                n_notes_done=self.n_notes + len(notes), n_chunks=self.seq + 1, heartbeat=timezone.now())
            if running:
                RenderChunk.objects.create(job=self.job, seq=self.seq, notes=EncodedJSON(notes_text),
                                           pedal=EncodedJSON(pedal_text))
        t2 = time.perf_counter()
        self.timing["store_s"] += t2 - t1
        if not running:
            log.info("job %s ended by someone else at chunk %d", self.job.id, self.seq)
            self.stopped.set()
            return
        self.n_notes += len(notes)
        for v, part in parts.items():
            self.take_parts.setdefault(v, []).append(part)
        # the WebSocket message encoded here: the channel layer carries one string and every
        # consumer relays it as is (instead of packing the note dicts into Redis and each Daphne
        # unpacking them and encoding JSON again for each listener)
        text = notes_message_text(seq=self.seq, notes_json=notes_text, pedal_json=pedal_text)
        sent = job_group_send(self.job, {"type": "job.notes", "seq": self.seq, "text": text})
        self.timing["send_s"] += time.perf_counter() - t2
        if self.seq == 0:   # from the job's start on this worker to its first chunk sent
            self.timing["first_sent_s"] = time.perf_counter() - self.t_start
        self.seq += 1
        if not sent:
            self.error = STREAM_LOST_MESSAGE

    def take_notes_text(self, variation: int) -> EncodedJSON:
        """The JSON text of every note published for take ``variation``, in order."""
        return EncodedJSON("[" + ",".join(p for p in self.take_parts.get(variation, ()) if p) + "]")
