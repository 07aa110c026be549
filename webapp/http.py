"""Small helpers of the HTML and JSON views: the session key, the client address, a
visible score or 404, a JSON error."""
from __future__ import annotations

from django.http import Http404, JsonResponse

from webapp.scores.selectors import score_get_visible


def request_session_key(request, *, create: bool = False) -> str:
    if not request.session.session_key and create:
        request.session["renders"] = True  # a non-empty session gets its cookie
        request.session.save()
    return request.session.session_key or ""


def client_addr(request) -> str:
    """The requester's network address (Daphne's peer; behind a proxy, start Daphne with
    --proxy-headers so that it is the client's)."""
    return (request.META.get("REMOTE_ADDR") or "")[:64]


def score_or_404(request, score_id):
    score = score_get_visible(score_id=score_id, user=request.user)
    if score is None:
        raise Http404("no such score")
    return score


def json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)
