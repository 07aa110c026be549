"""Performance views of the score page (thin): takes, notes, downloads. Rendering, following
and cancelling a job is the API's (webapp.api.views), for the page as for scripts."""
from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from webapp.http import json_error, request_session_key, score_or_404, visible_or_404
from webapp.jobs.downloads import AudioUnavailable, performance_file_response
from webapp.jobs.selectors import performance_get_visible, takes_for_score


@require_GET
def score_takes(request, score_id):
    score = score_or_404(request, score_id)
    return JsonResponse(takes_for_score(score=score, user=request.user,
                                        session_key=request_session_key(request)), safe=False)


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
