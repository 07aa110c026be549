"""Small helpers of the HTML and JSON views: the session key, the client address, a
visible score or 404, a JSON error, the upload size guard."""
from __future__ import annotations

from django.conf import settings
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


def visible_or_404(request, get, what: str, **ids):
    """``get(**ids, user=, session_key=)`` for the requester (a user, or an anonymous session),
    or 404 "no such <what>"."""
    obj = get(**ids, user=request.user, session_key=request_session_key(request))
    if obj is None:
        raise Http404(f"no such {what}")
    return obj


def json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def upload_too_large(request) -> str | None:
    """The message for a request body over the upload limit (checked before the body is
    parsed: the multipart part may be any size), else None."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.UPLOAD_MAX_BYTES + 65536:
        return f"the file is over the limit of {settings.UPLOAD_MAX_BYTES / 1e6:g} MB"
    return None
