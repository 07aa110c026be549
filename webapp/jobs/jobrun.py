"""One render job on a worker, from its score to its stored takes: `JobRun` prepares the model's
stream of the job, turns each decoded chunk into NOTE and PEDAL dicts for its publisher
(webapp.jobs.publisher: stored, then sent) and, at the end, stores the performances and says 'done'.

A worker's render session (webapp.jobs.worker) advances several JobRuns in one batched model pass;
each fails, or is cancelled, alone.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from render.errors import RenderError
from render.export import midi_file_bytes
from render.pedal import PedalStream
from webapp.errors import RenderStopped
from webapp.jobs.controls import controls_render_kwargs
from webapp.jobs.events import job_group_send, job_state_event
from webapp.jobs.lifecycle import render_time_limit
from webapp.jobs.notes import chunk_to_notes, events_to_pedal, notes_to_array, pedal_to_events, performance_duration
from webapp.jobs.publisher import ChunkPublisher
from webapp.jobs.renderer import get_renderer
from webapp.jobs.selectors import performances_done_summary
from webapp.models import Performance, ReferencePerformance, RenderJob
from webapp.scores.prep import load_parsed

log = logging.getLogger(__name__)


def render_failure_message(*, exc: BaseException, job_id) -> str:
    """The user's one line for a render that raised ``exc`` (never the raw text of a crash)."""
    if isinstance(exc, (RenderError, RenderStopped)):
        log.warning("job %s failed: %s", job_id, exc)
        return str(exc)[:500]
    if isinstance(exc, SoftTimeLimitExceeded):
        log.warning("job %s stopped by its Celery time limit", job_id)
        return "the render took longer than its time limit; try fewer takes or a shorter score"
    log.error("job %s failed", job_id, exc_info=exc)
    return (f"the render failed (an internal error, {type(exc).__name__}); press Render to try "
            "again")


class JobRun:
    """A running job's render: its model stream (ml.streams.RenderStream), publisher, per-take
    pedal streams, the notes so far and per-stage timing (logged at the end)."""

    def __init__(self, job: RenderJob):
        """Load the score and start the model's stream (RenderError, ValueError on bad input)."""
        self.job, self.t = job, {}
        self.t["since_post_s"] = (timezone.now() - job.created).total_seconds()   # HTTP, queue, claim
        self.finisher: threading.Thread | None = None  # stores the takes once the score has ended
        t0 = time.perf_counter()
        score_row = job.score
        score = load_parsed(score_row.parsed.path, title=score_row.title, fmt=score_row.format,
                            source=score_row.original_filename)
        self.t["load_score_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        controls = job.controls or {}
        kwargs = controls_render_kwargs(controls=controls, notes=score.notes)
        if controls.get("reference_id"):
            kwargs["reference"] = _load_reference(controls["reference_id"])
        self.stream = get_renderer().start(score, seed=int(job.seed),
                                           chunk_notes=settings.RENDER_CHUNK_NOTES,
                                           max_chunk_notes=max(settings.RENDER_CHUNK_NOTES,
                                                               settings.RENDER_MAX_CHUNK_NOTES), **kwargs)
        self.t["prepare_s"] = time.perf_counter() - t0
        self.beats = score.notes["onset_beat"]
        self.notes, self.pedal, self.pedals = [], [], {}   # pedals: take -> PedalStream
        self.limit = render_time_limit(n_notes=job.n_notes_total)
        self.deadline = time.monotonic() + self.limit
        self.publisher = ChunkPublisher(job, convert=self._convert)
        self.publisher.start()
        self.t_start = time.perf_counter()
        self.t["model_s"] = 0.0

    def feed(self, chunk: np.ndarray | None, model_s: float = 0.0) -> bool:
        """Publish one decoded chunk (None: the score has ended, store the takes). Returns True
        once this job has ended (done, or cancelled meanwhile); raises RenderStopped when it
        must fail (its time limit, a lost stream)."""
        self.t["model_s"] += model_s
        if chunk is None:  # the takes are stored by the publisher's thread: the others' passes go on
            self.publisher.finish(self._store_or_fail)
            self.finisher = self.publisher
            return True
        if time.monotonic() > self.deadline:  # enforced here: the solo pool ignores Celery's
            raise RenderStopped(f"the render took longer than its time limit ({self.limit:.0f} s for "
                                f"{self.job.n_notes_total} notes); try fewer takes or a shorter score")
        if self.publisher.failed:
            self._close_publisher()
            return True  # cancelled meanwhile (a publishing error raised above)
        self.publisher.put_chunk(chunk)   # its NOTE dicts are made there, off this thread
        return False

    def _convert(self, chunk: np.ndarray) -> tuple[list[dict], list[dict]]:
        """On the publisher's thread, chunk by chunk in order: the chunk's NOTE dicts and the
        PEDAL events its notes complete (kept for the takes)."""
        notes = chunk_to_notes(chunk, beats=self.beats)
        pedal = _chunk_pedal(self.pedals, chunk, self.beats)
        self.notes.extend(notes)
        self.pedal.extend(pedal)
        return notes, pedal

    def fail(self, exc: BaseException) -> None:
        """End this job as failed with the user's line for ``exc`` (its stored chunks are kept)."""
        try:
            self.publisher.close(timeout_s=30)
        finally:
            render_job_fail_with(job=self.job, exc=exc)

    def _close_publisher(self) -> int:
        n_chunks = self.publisher.close()
        if self.publisher.error:
            raise RenderStopped(self.publisher.error)
        return n_chunks

    def _store_or_fail(self) -> None:
        """On the publisher's thread, once every chunk is out: store the takes ('done'), or fail
        the job with the publisher's error."""
        try:
            if self.publisher.error:
                raise RenderStopped(self.publisher.error)
            if self.publisher.stopped.is_set():
                return
            last = [e for v, stream in sorted(self.pedals.items())   # each take's last chords
                    for e in pedal_to_events(stream.close(), variation=v)]
            if last:
                self.pedal.extend(last)
                self.publisher.publish([], last)
                if self.publisher.error:     # the send failed
                    raise RenderStopped(self.publisher.error)
                if self.publisher.stopped.is_set():   # cancelled meanwhile
                    return
            n_chunks = self.publisher.seq
            self.t.update(stream_s=time.perf_counter() - self.t_start, **self.publisher.timing)
            t0 = time.perf_counter()
            _store_takes(self.job, self.notes, n_chunks, self.pedal, notes_text=self.publisher.take_notes_text)
            self.t["finish_s"] = time.perf_counter() - t0
            log.info("job %s timing %s", self.job.id, json.dumps({
                "n_notes": len(self.notes), "n_chunks": n_chunks, **{k: round(v, 4) for k, v in self.t.items()}}))
        except Exception as exc:
            render_job_fail_with(job=self.job, exc=exc)


def render_job_fail_with(*, job: RenderJob, exc: BaseException) -> str:
    """Fail a running job with the user's line for ``exc``; tell its listeners. Returns its state."""
    msg = render_failure_message(exc=exc, job_id=job.id)
    RenderJob.objects.filter(id=job.id, state=RenderJob.State.RUNNING).update(
        state=RenderJob.State.FAILED, message=msg, finished=timezone.now())
    job.refresh_from_db()
    job_group_send(job, job_state_event(job))
    return job.state


def _chunk_pedal(pedals: dict, chunk: np.ndarray, beats: np.ndarray) -> list[dict]:
    """PEDAL dicts that the notes of ``chunk`` complete, per take (render.pedal.PedalStream)."""
    out = []
    variations = chunk["variation"] if "variation" in chunk.dtype.names else np.zeros(len(chunk), int)
    for v in np.unique(variations):
        rows = chunk[variations == v]
        stream = pedals.setdefault(int(v), PedalStream())
        ev = stream.feed(beats[rows["index"]], rows["onset_sec"], rows["duration_sec"], rows["sustain"], rows["soft"])
        out.extend(pedal_to_events(ev, variation=int(v)))
    return out


def _load_reference(reference_id):
    """The ml.inference.Reference of a stored reference performance (RenderError if gone)."""
    from ml.inference import load_reference  # torch: only in the worker processes

    ref = ReferencePerformance.objects.filter(id=reference_id).first()
    if ref is None or not ref.encoded:
        raise RenderError("the reference performance of this render no longer exists")
    try:
        return load_reference(ref.encoded.path)
    except (OSError, ValueError) as exc:
        raise RenderError(f"the reference performance could not be read ({exc})") from exc


def _store_takes(job: RenderJob, notes: list[dict], n_chunks: int, pedal: list[dict], *,
                 notes_text) -> str:
    """Store the performances (one per variation: MIDI with its pedal, notes, pedal events) and
    mark the job done, in one transaction and only while the job runs (a cancel meanwhile
    stores nothing). ``notes_text(variation)`` is a take's notes as the JSON text the publisher
    already encoded (ChunkPublisher.take_notes_text), stored as it is. Returns the job's state."""
    by_variation: dict[int, list[dict]] = {}
    for n in notes:
        by_variation.setdefault(int(n.get("v", 0)), []).append(n)
    perfs = []
    with transaction.atomic():
        if not RenderJob.objects.filter(id=job.id, state=RenderJob.State.RUNNING).update(
                state=RenderJob.State.DONE, finished=timezone.now(), n_chunks=n_chunks):
            return RenderJob.objects.get(id=job.id).state
        for v, vnotes in sorted(by_variation.items()):
            vpedal = [e for e in pedal if e["v"] == v]
            midi = midi_file_bytes(notes_to_array(vnotes), pedal=events_to_pedal(vpedal))
            perf = Performance(job=job, variation=v, score=job.score, seed=job.seed,
                               controls=job.controls, notes=notes_text(v),
                               pedal=vpedal, n_notes=len(vnotes), duration_sec=performance_duration(vnotes))
            perf.midi.save(f"{perf.id.hex}.mid", ContentFile(midi), save=False)
            perf.save()
            perfs.append(perf)
    job.state = RenderJob.State.DONE
    # n_chunks: a consumer that relayed them all skips its catch-up read
    job_group_send(job, {"type": "job.done", "n_chunks": n_chunks, **performances_done_summary(performances=perfs)})
    log.info("job %s done: %d notes (%d takes) in %d chunks", job.id, len(notes),
             len(by_variation), n_chunks)
    return job.state
