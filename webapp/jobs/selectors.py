"""Reads of render jobs and performances: what a requester may see, and the shapes
the pages, the socket and the API return."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db.models import Prefetch, TextField
from django.db.models.functions import Cast
from django.urls import reverse

from webapp.jobs.notes import notes_message_text
from webapp.models import Performance, RenderChunk, RenderJob, Score
from webapp.owners import owner_q

DOWNLOAD_FORMATS = ("mid", "wav", "ogg", "csv")
# a take's notes and pedal: summaries leave them in the database (a 2,312-note take is ~250 kB
# of JSON to decode)
NOTES_FIELDS = ("notes", "pedal")


def job_get_for_requester(*, job_id: uuid.UUID, user, session_key: str) -> RenderJob | None:
    """The job if it was made by this user (or, anonymously, by this session), else None."""
    return (RenderJob.objects.select_related("score")
            .filter(owner_q(user, session_key), id=job_id).first())


def job_chunks(*, job_id: uuid.UUID, from_seq: int = 0) -> list[dict]:
    """Stored chunks of a job from ``from_seq`` on, in seq order, as [{"seq", "text"}]: ``text``
    is the chunk's WebSocket message ({"type": "notes", "seq", "notes", "pedal"}) made from the
    stored JSON text, never decoded here (a replay of a long take decoded and encoded again
    every note: the largest CPU cost of Daphne under many renders, py-spy)."""
    rows = (RenderChunk.objects.filter(job_id=job_id, seq__gte=max(0, from_seq)).order_by("seq")
            .values_list("seq", Cast("notes", TextField()), Cast("pedal", TextField())))
    return [{"seq": seq, "text": notes_message_text(seq=seq, notes_json=notes, pedal_json=pedal)}
            for seq, notes, pedal in rows]


def job_stream_snapshot(*, job_id: uuid.UUID, from_seq: int = 0) -> tuple[str, str | None, list[dict], dict | None]:
    """What a job's listener is owed now: (state, message, stored chunks from ``from_seq``, the
    'done' message or None).

    The chunks are read last: a worker stores every chunk before it stores the takes that make
    the 'done' message, so a snapshot that has 'done' also has every chunk. (Read the other way
    round, a job that ended between the two reads gave 'done' without its last chunks: a
    listener connecting as the job ended got a take without its tail.)
    """
    job = RenderJob.objects.get(id=job_id)
    done = job_done_summary(job_id=job_id)
    return job.state, job.message or None, job_chunks(job_id=job_id, from_seq=from_seq), done


def job_summary(*, job: RenderJob) -> dict:
    """A job's state, progress, takes and WebSocket path (the API adds its own URLs:
    webapp.api.selectors.api_job)."""
    return {"job_id": str(job.id), "state": job.state, "message": job.message or None,
            "seed": job.seed, "n_notes_done": job.n_notes_done, "n_notes_total": job.n_notes_total,
            "n_chunks": job.n_chunks, "ws_url": f"/ws/jobs/{job.id}/",
            "controls": job.controls,
            "performance_id": _perf_id(job),
            "performance_ids": [str(p) for p in Performance.objects.filter(job=job)
                                .order_by("variation").values_list("id", flat=True)]}


def render_speed() -> float:
    """Notes per second of one worker, from the last 20 finished jobs (else RENDER_NOTES_PER_S)."""
    rows = (RenderJob.objects.filter(state=RenderJob.State.DONE, started__isnull=False,
                                     finished__isnull=False)
            .order_by("-finished").values_list("n_notes_total", "started", "finished")[:20])
    notes = sum(n for n, _, _ in rows)
    secs = sum((f - s).total_seconds() for _, s, f in rows)
    return notes / secs if notes and secs > 0 else settings.RENDER_NOTES_PER_S


def job_queue_position(*, job: RenderJob) -> dict:
    """Where a queued job stands: ``position`` (1 = next to start), ``ahead`` (queued jobs
    before it), ``running`` (jobs being rendered) and ``eta_s``, the estimated seconds until it
    starts (the notes left before it over the workers' speed). Position 0 once it has left the
    queue."""
    if job.state != RenderJob.State.QUEUED:
        return {"position": 0, "ahead": 0, "running": 0, "eta_s": 0}
    ahead = RenderJob.objects.filter(state=RenderJob.State.QUEUED, created__lt=job.created)
    running = RenderJob.objects.filter(state=RenderJob.State.RUNNING)
    run_rows = list(running.values_list("n_notes_total", "n_notes_done", "worker"))
    notes_left = sum(max(0, t - d) for t, d, _ in run_rows)
    notes_left += sum(ahead.values_list("n_notes_total", flat=True))
    workers = max(1, len({w for _, _, w in run_rows}))
    n_ahead = ahead.count()
    return {"position": n_ahead + 1, "ahead": n_ahead, "running": len(run_rows),
            "eta_s": round(notes_left / (render_speed() * workers), 1)}


def _perf_id(job: RenderJob) -> str | None:
    perf = (Performance.objects.filter(job=job).order_by("variation")
            .values_list("id", flat=True).first())
    return str(perf) if perf else None


def job_done_summary(*, job_id) -> dict | None:
    """The 'done' message of a finished job: its first take's summary plus ``performances``
    (every take of the job, by variation); None while it has none."""
    perfs = list(Performance.objects.filter(job_id=job_id).order_by("variation").defer(*NOTES_FIELDS))
    if not perfs:
        return None
    return performances_done_summary(performances=perfs)


def performances_done_summary(*, performances: list[Performance]) -> dict:
    """The 'done' message of a job whose takes are ``performances`` (by variation, not empty)."""
    return {**performance_summary(performance=performances[0]),
            "performances": [performance_summary(performance=p) for p in performances]}


def performance_downloads(*, performance_id) -> dict:
    return {fmt: reverse("performance-download", args=[performance_id, fmt])
            for fmt in DOWNLOAD_FORMATS}


def performance_summary(*, performance: Performance) -> dict:
    """What the 'done' message and the takes list say about a performance."""
    return {"performance_id": str(performance.id), "n_notes": performance.n_notes,
            "variation": performance.variation,
            "duration": round(performance.duration_sec, 3),
            "notes_url": reverse("performance-notes", args=[performance.id]),
            "downloads": performance_downloads(performance_id=performance.id)}


def takes_for_score(*, score: Score, user, session_key: str) -> list[dict]:
    """The requester's takes of a score, oldest first: one per performance (a job rendering
    several variations gives several takes), or one per job that has none (running, failed)."""
    jobs = (RenderJob.objects.filter(owner_q(user, session_key), score=score)
            .prefetch_related(Prefetch("performances", queryset=Performance.objects.defer(*NOTES_FIELDS)))
            .order_by("created"))
    out = []
    for job in jobs:
        perfs = sorted(job.performances.all(), key=lambda p: p.variation)
        base = {"job_id": str(job.id), "seed": job.seed, "controls": job.controls,
                "created": job.created.isoformat(), "state": job.state,
                "message": job.message or None, "performance_id": None, "n_notes": 0,
                "variation": 0, "variations": len(perfs) or 1,
                "notes_url": None, "downloads": {}}
        if not perfs:
            out.append(base)
        for perf in perfs:
            out.append({**base, **performance_summary(performance=perf)})
    return out


def performance_get_visible(*, performance_id: uuid.UUID, user,
                            session_key: str) -> Performance | None:
    return (Performance.objects.select_related("score", "job")
            .filter(owner_q(user, session_key, "job__"), id=performance_id).first())
