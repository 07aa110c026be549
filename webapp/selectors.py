"""Reads: what a user (or an anonymous session) may see, and the shapes the pages and API return."""
from __future__ import annotations

import uuid

from django.db.models import Q
from django.urls import reverse

from webapp.models import Performance, RenderChunk, RenderJob, Score

DOWNLOAD_FORMATS = ("mid", "wav", "ogg", "csv")


def _owner_q(user, session_key: str, prefix: str = "") -> Q:
    if user is not None and user.is_authenticated:
        return Q(**{f"{prefix}owner": user})
    if not session_key:
        return Q(pk__in=[])
    return Q(**{f"{prefix}owner": None, f"{prefix}session_key": session_key})


def score_list_demos():
    return Score.objects.filter(is_demo=True).order_by("title")


def score_list_for_user(*, user):
    if user is None or not user.is_authenticated:
        return Score.objects.none()
    return Score.objects.filter(owner=user, is_demo=False)


def score_get_visible(*, score_id: uuid.UUID, user) -> Score | None:
    """The score if the user may see it (a demo, or their own upload), else None."""
    q = Q(is_demo=True)
    if user is not None and user.is_authenticated:
        q |= Q(owner=user)
    return Score.objects.filter(q, id=score_id).first()


def job_get_for_requester(*, job_id: uuid.UUID, user, session_key: str) -> RenderJob | None:
    """The job if it was made by this user (or, anonymously, by this session), else None."""
    return (RenderJob.objects.select_related("score")
            .filter(_owner_q(user, session_key), id=job_id).first())


def job_chunks(*, job_id: uuid.UUID, from_seq: int = 0) -> list[dict]:
    """Stored chunks of a job from ``from_seq`` on, as [{"seq", "notes"}] in seq order."""
    rows = (RenderChunk.objects.filter(job_id=job_id, seq__gte=max(0, from_seq))
            .order_by("seq").values("seq", "notes"))
    return list(rows)


def job_summary(*, job: RenderJob) -> dict:
    return {"job_id": str(job.id), "state": job.state, "message": job.message or None,
            "seed": job.seed, "n_notes_done": job.n_notes_done, "n_notes_total": job.n_notes_total,
            "n_chunks": job.n_chunks, "ws_url": f"/ws/jobs/{job.id}/",
            "cancel_url": reverse("job-cancel", args=[job.id]),
            "performance_id": _perf_id(job)}


def _perf_id(job: RenderJob) -> str | None:
    perf = Performance.objects.filter(job=job).values_list("id", flat=True).first()
    return str(perf) if perf else None


def performance_downloads(*, performance_id) -> dict:
    return {fmt: reverse("performance-download", args=[performance_id, fmt])
            for fmt in DOWNLOAD_FORMATS}


def performance_summary(*, performance: Performance) -> dict:
    """What the 'done' message and the takes list say about a performance."""
    return {"performance_id": str(performance.id), "n_notes": performance.n_notes,
            "duration": round(performance.duration_sec, 3),
            "notes_url": reverse("performance-notes", args=[performance.id]),
            "downloads": performance_downloads(performance_id=performance.id)}


def takes_for_score(*, score: Score, user, session_key: str) -> list[dict]:
    """The requester's render jobs of a score, oldest first, with their performances."""
    jobs = (RenderJob.objects.filter(_owner_q(user, session_key), score=score)
            .select_related("performance").order_by("created"))
    out = []
    for job in jobs:
        perf = getattr(job, "performance", None)
        item = {"job_id": str(job.id), "seed": job.seed, "controls": job.controls,
                "created": job.created.isoformat(), "state": job.state,
                "message": job.message or None, "performance_id": None, "n_notes": 0,
                "notes_url": None, "downloads": {}}
        if perf is not None:
            item.update(performance_summary(performance=perf))
        out.append(item)
    return out


def performance_get_visible(*, performance_id: uuid.UUID, user,
                            session_key: str) -> Performance | None:
    return (Performance.objects.select_related("score", "job")
            .filter(_owner_q(user, session_key, "job__"), id=performance_id).first())
