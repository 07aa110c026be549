"""Reads for the API: the JSON shapes of scores, jobs, performances and presets (see
webapp.api.serializers)."""
from __future__ import annotations

from django.urls import reverse

from webapp.jobs.selectors import DOWNLOAD_FORMATS, job_summary
from webapp.models import Performance, RenderJob, Score
from webapp.presets import selectors as preset_selectors
from webapp.presets.models import Preset
from webapp.scores.selectors import score_list_demos, score_list_for_user


def api_score(*, score: Score) -> dict:
    return {"score_id": str(score.id), "title": score.title, "description": score.description,
            "is_demo": score.is_demo, "original_filename": score.original_filename,
            "format": score.format, "n_notes": score.n_notes,
            "duration_beat": score.duration_beat, "written_tempo_bpm": score.written_tempo_bpm,
            "warnings": list(score.warnings or []), "created": score.created.isoformat(),
            "page_url": reverse("score", args=[score.id]),
            "mei_url": reverse("score-mei", args=[score.id])}


def api_scores_visible(*, user) -> list[dict]:
    """Demo scores, then the user's own uploads (newest first)."""
    scores = list(score_list_demos())
    scores += list(score_list_for_user(user=user))
    return [api_score(score=s) for s in scores]


def api_job(*, job: RenderJob) -> dict:
    """A job as the API answers it (the player's and the scripts'): its summary, and where to
    poll and cancel it."""
    return {**job_summary(job=job), "status_url": reverse("api-job", args=[job.id]),
            "cancel_url": reverse("api-job-cancel", args=[job.id])}


def api_performance_summary(*, performance: Performance) -> dict:
    return {"performance_id": str(performance.id), "job_id": str(performance.job_id),
            "seed": performance.seed, "controls": performance.controls,
            "variation": getattr(performance, "variation", 0), "n_notes": performance.n_notes,
            "duration": round(performance.duration_sec, 3),
            "created": performance.created.isoformat(),
            "url": reverse("api-performance", args=[performance.id]),
            "downloads": {fmt: reverse("api-performance-download", args=[performance.id, fmt])
                          for fmt in DOWNLOAD_FORMATS}}


def api_performance(*, performance: Performance) -> dict:
    return {**api_performance_summary(performance=performance),
            "score_id": str(performance.score_id), "notes": performance.notes,
            "pedal": performance.pedal}


def api_performances_for_score(*, score: Score, user) -> list[dict]:
    """The user's performances of a score, oldest first (none for anonymous callers)."""
    if user is None or not user.is_authenticated:
        return []
    perfs = Performance.objects.filter(score=score, job__owner=user).order_by("created").defer("notes", "pedal")
    return [api_performance_summary(performance=p) for p in perfs]


def api_preset(*, preset: Preset, for_owner: bool) -> dict:
    out = preset_selectors.preset_summary(preset=preset, for_owner=for_owner)
    if for_owner:
        out["api_url"] = reverse("api-preset", args=[preset.id])
        out["page_url"] = reverse("preset-detail", args=[preset.id])
    else:
        out["api_url"] = reverse("api-shared-preset", args=[preset.share_token])
        out["page_url"] = reverse("preset-shared", args=[preset.share_token])
    return out
