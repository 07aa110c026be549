"""The worker's side of a render: run the model over a score and stream its notes.

`render_job_run` is the one service the Celery task calls. The model is loaded once per worker
process (webapp.renderer.get_renderer) and reused for every job.
"""
from __future__ import annotations

import json
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
from webapp.models import Performance, ReferencePerformance, RenderJob
from webapp.publisher import STREAM_LOST_MESSAGE, ChunkPublisher, job_still_running  # noqa: F401 (re-exported)
from webapp.notes import chunk_to_notes, events_to_pedal, notes_to_array, pedal_to_events, performance_duration
from webapp.renderer import get_renderer
from webapp.scoreprep import load_parsed
from webapp.selectors import job_done_summary

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 2.0


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
    t = {}  # seconds per stage of the job, logged at the end (bench/web_bench.py prints them)
    t0 = time.perf_counter()
    score_row = job.score
    score = load_parsed(score_row.parsed.path, title=score_row.title, fmt=score_row.format,
                        source=score_row.original_filename)
    t["load_score_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    renderer = get_renderer()
    controls = job.controls or {}
    kwargs = controls_render_kwargs(controls=controls, notes=score.notes)
    if controls.get("reference_id"):
        kwargs["reference"] = _load_reference(controls["reference_id"])
    chunks = renderer.render(score, seed=int(job.seed), chunk_notes=settings.RENDER_CHUNK_NOTES,
                             **kwargs)
    t["prepare_s"] = time.perf_counter() - t0
    beats = score.notes["onset_beat"]
    all_notes, all_pedal, pedals = [], [], {}   # pedals: variation -> render.pedal.PedalStream
    limit = render_time_limit(n_notes=job.n_notes_total)
    deadline = time.monotonic() + limit
    publisher = ChunkPublisher(job)
    publisher.start()
    t_model = t_convert = 0.0
    t_job = time.perf_counter()
    try:
        while True:
            t0 = time.perf_counter()
            chunk = next(chunks, None)
            t1 = time.perf_counter()
            t_model += t1 - t0
            if chunk is None:
                break
            if time.monotonic() > deadline:  # enforced here too: the solo pool ignores Celery's
                raise RenderStopped(f"the render took longer than its time limit ({limit:.0f} s for "
                                    f"{job.n_notes_total} notes); try fewer takes or a shorter score")
            chunk = np.asarray(chunk)
            notes = chunk_to_notes(chunk, beats=beats)
            pedal = _chunk_pedal(pedals, chunk, beats)
            t_convert += time.perf_counter() - t1
            if publisher.failed:
                break
            publisher.put(notes, pedal)
            all_notes.extend(notes)
            all_pedal.extend(pedal)
        last = [e for v, stream in sorted(pedals.items())   # each take's last chords: all their notes came
                for e in pedal_to_events(stream.close(), variation=v)]
        publisher.put([], last)
        all_pedal.extend(last)
    finally:
        t0 = time.perf_counter()
        n_chunks = publisher.close()
        t["publish_wait_s"] = time.perf_counter() - t0
    if publisher.error:
        raise RenderStopped(publisher.error)
    if publisher.stopped.is_set():
        return RenderJob.objects.get(id=job.id).state
    t.update(model_s=t_model, convert_s=t_convert, stream_s=time.perf_counter() - t_job, **publisher.timing)
    t0 = time.perf_counter()
    state = _finish(job, all_notes, n_chunks, all_pedal)
    t["finish_s"] = time.perf_counter() - t0
    log.info("job %s timing %s", job.id, json.dumps({"n_notes": len(all_notes), "n_chunks": n_chunks,
                                                     **{k: round(v, 4) for k, v in t.items()}}))
    return state


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


def _finish(job: RenderJob, notes: list[dict], n_chunks: int, pedal: list[dict]) -> str:
    """Store the performances (one per variation: MIDI with its pedal, notes, pedal events) and
    mark the job done."""
    by_variation: dict[int, list[dict]] = {}
    for n in notes:
        by_variation.setdefault(int(n.get("v", 0)), []).append(n)
    with tempfile.TemporaryDirectory(prefix="perf-") as tmp, transaction.atomic():
        if not job_still_running(job.id):
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
