"""Reference performance views (thin): upload and list, notes, delete."""
from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.http import json_error, request_session_key, score_or_404, upload_too_large, visible_or_404
from webapp.references.selectors import reference_get_visible, reference_summary, references_for_score
from webapp.references.services import ReferenceRefused, reference_create_from_upload
from webapp.references.services import reference_delete as reference_delete_service


@require_http_methods(["GET", "POST"])
def score_references(request, score_id):
    """GET: the requester's references of the score; POST (multipart ``file``, ``title``):
    upload a MIDI performance, aligned before the answer (201 with its report, 400 refused)."""
    score = score_or_404(request, score_id)
    if request.method == "GET":
        return JsonResponse(references_for_score(
            score=score, user=request.user, session_key=request_session_key(request)), safe=False)
    if (too_large := upload_too_large(request)) is not None:
        return json_error(too_large, 400)
    upload = request.FILES.get("file")
    if upload is None:
        return json_error("choose a MIDI file of a performance of this score", 400)
    try:
        ref = reference_create_from_upload(
            uploaded_file=upload, score=score, user=request.user,
            session_key=request_session_key(request, create=True),
            title=(request.POST.get("title") or "")[:200])
    except ReferenceRefused as exc:
        return json_error(str(exc), 400)
    return JsonResponse(reference_summary(reference=ref), status=201)


def _reference_or_404(request, reference_id):
    return visible_or_404(request, reference_get_visible, "reference performance", reference_id=reference_id)


@require_GET
def reference_notes(request, reference_id):
    ref = _reference_or_404(request, reference_id)
    return JsonResponse({**reference_summary(reference=ref), "notes": ref.notes})


@require_POST
def reference_delete(request, reference_id):
    reference_delete_service(reference=_reference_or_404(request, reference_id))
    return JsonResponse({"deleted": str(reference_id)})
