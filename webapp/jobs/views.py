"""Render job and performance views (thin): render, status, cancel, takes, notes,
downloads."""
from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from webapp.errors import JobNotActive, RenderLimitReached, RenderServiceUnavailable
from webapp.http import client_addr, json_error, request_session_key, score_or_404, visible_or_404
from webapp.jobs.downloads import AudioUnavailable, performance_file_response
from webapp.jobs.lifecycle import render_jobs_fail_stale
from webapp.jobs.selectors import job_get_for_requester, job_summary, performance_get_visible, takes_for_score
from webapp.jobs.services import render_job_cancel, render_job_create
from webapp.references.selectors import reference_get_visible


def _render_params(request, *, session_key: str) -> dict:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise ValueError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
    else:
        body = request.POST.dict()
    seed = body.get("seed")
    if seed in (None, ""):
        seed = None
    else:
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise ValueError("seed must be an integer") from None
        if not 0 <= seed < 2**31:
            raise ValueError("seed must be between 0 and 2147483647")
    controls = body.get("controls") or {}
    if not isinstance(controls, dict):
        raise ValueError("controls must be a JSON object")
    ref_id = controls.get("reference_id")
    if ref_id not in (None, "") and reference_get_visible(
            reference_id=ref_id, user=request.user, session_key=session_key) is None:
        raise ValueError("no such reference performance (it is not yours, or it was deleted)")
    return {"seed": seed, "controls": controls}


@require_POST
def score_render(request, score_id):
    score = score_or_404(request, score_id)
    session_key = request_session_key(request, create=True)
    try:
        params = _render_params(request, session_key=session_key)
        job = render_job_create(score=score, user=request.user,
                                         session_key=session_key,
                                         client_addr=client_addr(request), **params)
    except ValueError as exc:
        return json_error(str(exc), 400)
    except RenderLimitReached as exc:
        return json_error(str(exc), 429)
    except RenderServiceUnavailable as exc:
        return json_error(str(exc), 503)
    return JsonResponse(job_summary(job=job), status=201)


@require_GET
def score_takes(request, score_id):
    score = score_or_404(request, score_id)
    return JsonResponse(takes_for_score(score=score, user=request.user,
                                        session_key=request_session_key(request)), safe=False)


def _job_or_404(request, job_id):
    return visible_or_404(request, job_get_for_requester, "job", job_id=job_id)


@require_GET
def job_status(request, job_id):
    job = _job_or_404(request, job_id)
    render_jobs_fail_stale(job_ids=[job.id])
    job.refresh_from_db()
    return JsonResponse(job_summary(job=job))


@require_POST
def job_cancel(request, job_id):
    job = _job_or_404(request, job_id)
    try:
        job = render_job_cancel(job=job)
    except JobNotActive as exc:
        return json_error(str(exc), 409)
    return JsonResponse({"state": job.state})


def _perf_or_404(request, performance_id):
    return visible_or_404(request, performance_get_visible, "performance", performance_id=performance_id)


@require_GET
def performance_notes(request, performance_id):
    perf = _perf_or_404(request, performance_id)
    return JsonResponse({"performance_id": str(perf.id), "seed": perf.seed,
                         "variation": perf.variation, "job_id": str(perf.job_id),
                         "controls": perf.controls, "notes": perf.notes, "pedal": perf.pedal})


@require_GET
def performance_download(request, performance_id, fmt):
    perf = _perf_or_404(request, performance_id)
    try:
        return performance_file_response(performance=perf, fmt=fmt)
    except AudioUnavailable as exc:
        return json_error(str(exc), 503)
