"""Every API error is JSON ``{"error": message}`` (plus ``fields`` for invalid input), never an
HTML page."""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

log = logging.getLogger("webapp.api")


def _first_message(detail) -> str:
    """A one-line message from DRF's error detail (str, list or dict of them)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            msg = _first_message(value)
            return msg if key in ("non_field_errors", "detail") else f"{key}: {msg}"
        return "invalid input"
    if isinstance(detail, (list, tuple)):
        return _first_message(detail[0]) if detail else "invalid input"
    return str(detail)


def exception_handler(exc, context):
    """DRF exception handler: ``{"error": ...}`` with the right status; unexpected errors: 500.

    Parameters
    ----------
    exc : Exception
    context : dict
        DRF's context (view, request).

    Returns
    -------
    Response
    """
    if isinstance(exc, Http404):
        return Response({"error": str(exc) or "not found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        body = {"error": _first_message(exc.detail)}
        if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
            body["fields"] = {k: [str(m) for m in (v if isinstance(v, list) else [v])]
                              for k, v in exc.detail.items()}
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(body, status=exc.status_code, headers=headers)
    log.exception("API error in %s", type(context.get("view")).__name__)
    return Response({"error": f"internal error ({type(exc).__name__})"},
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)
