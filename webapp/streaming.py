"""The worker's side of a render: run the model over a score and stream its notes.

`render_job_run` is the one service the Celery task calls. The model is loaded once per worker
process (webapp.renderer.get_renderer) and reused for every job.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from render.errors import RenderError
from render.export import save_midi
from render.pedal import PedalStream
from webapp.controls import controls_render_kwargs
from webapp.errors import RenderStopped
from webapp.jobevents import job_group_send, job_state_event
from webapp.jobqueue import render_time_limit
from webapp.models import Performance, ReferencePerformance, RenderChunk, RenderJob
from webapp.notes import chunk_to_notes, events_to_pedal, notes_to_array, pedal_to_events, performance_duration
from webapp.renderer import get_renderer
from webapp.scoreprep import load_parsed
from webapp.selectors import job_done_summary

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 0.05      # send a chunk at least this often once the first one has gone out
HEARTBEAT_EVERY_S = 2.0
STREAM_LOST_MESSAGE = ("the connection to the live stream was lost (the message service did not "
                       "answer); the notes rendered so far are kept; press Render to try again")


def worker_name() -> str:
    """This process's name as stored on the jobs it runs (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat(threading.Thread):
    """Touches job.heartbeat every few seconds while the render runs (also during long steps)."""

    def __init__(self, job_id):
        super().__init__(daemon=True)
        self.job_id, self.stop = job_id, threading.Event()

    def run(self):
        try:
            while not self.stop.wait(HEARTBEAT_EVERY_S):
                RenderJob.objects.filter(id=self.job_id).update(heartbeat=timezone.now())
        finally:
            connection.close()


def _still_running(job_id) -> bool:
    """False once the job was cancelled (or failed by the stale-job sweep): stop rendering."""
    return RenderJob.objects.filter(id=job_id, state=RenderJob.State.RUNNING).exists()


def render_job_run(*, job_id: uuid.UUID | str, worker: str | None = None) -> str:
    """Render one job: stream chunks (stored, then sent to the job's group), store the performance.

    Parameters
    ----------
    job_id : UUID or str
    worker : str, optional
        Name of this worker (hostname:pid), stored on the job for the stale-job sweep.

    Returns
    -------
    str
        The job's final state.
    """
    close_old_connections()
    started = RenderJob.objects.filter(id=job_id, state=RenderJob.State.QUEUED).update(
        state=RenderJob.State.RUNNING, started=timezone.now(), heartbeat=timezone.now(),
        worker=worker or worker_name())
    job = RenderJob.objects.select_related("score").get(id=job_id)
    if not started:
        log.info("job %s not started: it is %s", job_id, job.state)
        return job.state
    job_group_send(job, job_state_event(job))
    beat = _Heartbeat(job.id)
    beat.start()
    try:
        state = _stream(job)
    except Exception as exc:
        msg = render_failure_message(exc=exc, job_id=job_id)
        RenderJob.objects.filter(id=job.id, state=RenderJob.State.RUNNING).update(
            state=RenderJob.State.FAILED, message=msg, finished=timezone.now())
        job.refresh_from_db()
        job_group_send(job, job_state_event(job))
        state = job.state
    finally:
        beat.stop.set()
        beat.join(timeout=5)
    return state


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


def _stream(job: RenderJob) -> str:
    score_row = job.score
    score = load_parsed(score_row.parsed.path, title=score_row.title, fmt=score_row.format,
                        source=score_row.original_filename)
    renderer = get_renderer()
    controls = job.controls or {}
    kwargs = controls_render_kwargs(controls=controls, notes=score.notes)
    if controls.get("reference_id"):
        kwargs["reference"] = _load_reference(controls["reference_id"])
    chunks = renderer.render(score, seed=int(job.seed), chunk_notes=settings.RENDER_CHUNK_NOTES,
                             **kwargs)
    beats = score.notes["onset_beat"]
    seq, pending, all_notes = 0, [], []
    pedal_pending, all_pedal, pedals = [], [], {}   # pedals: variation -> render.pedal.PedalStream
    last_flush = None
    limit = render_time_limit(n_notes=job.n_notes_total)
    deadline = time.monotonic() + limit
    for chunk in chunks:
        if time.monotonic() > deadline:  # enforced here too: the solo pool ignores Celery's
            raise RenderStopped(f"the render took longer than its time limit ({limit:.0f} s for "
                                f"{job.n_notes_total} notes); try fewer takes or a shorter score")
        chunk = np.asarray(chunk)
        pending.extend(chunk_to_notes(chunk, beats=beats))
        pedal_pending.extend(_chunk_pedal(pedals, chunk, beats))
        now = time.monotonic()
        if last_flush is None or now - last_flush >= FLUSH_EVERY_S:
            if not _flush(job, seq, pending, pedal_pending):
                return RenderJob.objects.get(id=job.id).state
            all_notes.extend(pending)
            all_pedal.extend(pedal_pending)
            seq, pending, pedal_pending, last_flush = seq + 1, [], [], now
    for v, stream in sorted(pedals.items()):   # each take's last chords: their notes have all come
        pedal_pending.extend(pedal_to_events(stream.close(), variation=v))
    if pending or pedal_pending:
        if not _flush(job, seq, pending, pedal_pending):
            return RenderJob.objects.get(id=job.id).state
        all_notes.extend(pending)
        all_pedal.extend(pedal_pending)
        seq += 1
    return _finish(job, all_notes, seq, all_pedal)


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


def _flush(job: RenderJob, seq: int, notes: list[dict], pedal: list[dict]) -> bool:
    """Store and send one chunk (notes and the pedal events they complete); False when the job
    was ended meanwhile (nothing sent).

    Raises
    ------
    RenderStopped
        When the chunk (stored) could not be sent after the retries of job_group_send.
    """
    if not _still_running(job.id):
        log.info("job %s ended by someone else at chunk %d", job.id, seq)
        return False
    with transaction.atomic():
        RenderChunk.objects.create(job=job, seq=seq, notes=notes, pedal=pedal)
        job.n_notes_done += len(notes)
        job.n_chunks = seq + 1
        RenderJob.objects.filter(id=job.id).update(n_notes_done=job.n_notes_done,
                                                   n_chunks=job.n_chunks,
                                                   heartbeat=timezone.now())
    if not job_group_send(job, {"type": "job.notes", "seq": seq, "notes": notes, "pedal": pedal}):
        raise RenderStopped(STREAM_LOST_MESSAGE)
    return True


def _finish(job: RenderJob, notes: list[dict], n_chunks: int, pedal: list[dict]) -> str:
    """Store the performances (one per variation: MIDI with its pedal, notes, pedal events) and
    mark the job done."""
    by_variation: dict[int, list[dict]] = {}
    for n in notes:
        by_variation.setdefault(int(n.get("v", 0)), []).append(n)
    with tempfile.TemporaryDirectory(prefix="perf-") as tmp, transaction.atomic():
        if not _still_running(job.id):
            return RenderJob.objects.get(id=job.id).state
        for v, vnotes in sorted(by_variation.items()):
            midi_path = Path(tmp) / f"performance-{v}.mid"
            vpedal = [e for e in pedal if e["v"] == v]
            save_midi(notes_to_array(vnotes), midi_path, pedal=events_to_pedal(vpedal))
            perf = Performance(job=job, variation=v, score=job.score, seed=job.seed,
                               controls=job.controls, notes=vnotes, pedal=vpedal, n_notes=len(vnotes),
                               duration_sec=performance_duration(vnotes))
            with open(midi_path, "rb") as f:
                perf.midi.save(f"{perf.id.hex}.mid", File(f), save=False)
            perf.save()
        RenderJob.objects.filter(id=job.id).update(
            state=RenderJob.State.DONE, finished=timezone.now(), n_chunks=n_chunks)
    job.refresh_from_db()
    job_group_send(job, {"type": "job.done", **job_done_summary(job_id=job.id)})
    log.info("job %s done: %d notes (%d takes) in %d chunks", job.id, len(notes),
             len(by_variation), n_chunks)
    return job.state
