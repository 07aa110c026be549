"""API views (thin): validate the request, call one selector or service, answer JSON.

Errors are ``{"error": message}`` (webapp.api.errors); the schema is drf-spectacular's.
"""
from __future__ import annotations

from django.contrib.auth import authenticate
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api import selectors as api_selectors
from webapp.api import serializers as s
from webapp.api.permissions import USER_OR_SESSION
from webapp.errors import JobNotActive, RenderLimitReached, RenderServiceUnavailable, ScoreError
from webapp.http import client_addr, request_session_key, score_or_404, upload_too_large, visible_or_404
from webapp.jobs.downloads import AudioUnavailable, performance_file_response
from webapp.jobs.lifecycle import render_jobs_fail_stale
from webapp.jobs.selectors import DOWNLOAD_FORMATS, job_get_for_requester, performance_get_visible
from webapp.jobs.services import render_job_cancel, render_job_create
from webapp.references.selectors import reference_get_visible
from webapp.scores.services import score_create_from_upload

ERRORS = {code: OpenApiResponse(s.ErrorSerializer, description=text) for code, text in {
    400: "Invalid input", 401: "Not signed in, or a bad token",
    403: "Not allowed (a browser session's write without its CSRF token)",
    404: "Not found (or not yours)", 409: "Conflict", 415: "Not multipart/form-data",
    429: "Too many renders in progress",
    503: "The render service is unavailable (nothing was queued); try again"}.items()}


def _errors(*codes):
    return {c: ERRORS[c] for c in codes}


def _valid(serializer_class, data):
    ser = serializer_class(data=data)
    ser.is_valid(raise_exception=True)
    return ser.validated_data


def _body(request) -> dict:
    if not isinstance(request.data, dict) and not hasattr(request.data, "getlist"):
        raise ValidationError("the request body must be a JSON object")
    return request.data


def _job_created(job) -> Response:
    return Response(api_selectors.api_job(job=job), status=status.HTTP_201_CREATED)


def _render_refusals(call):
    """Run a render-creating call; its refusals as API errors (400 controls, 429 limit, 503 the
    render queue is unreachable)."""
    try:
        return call()
    except RenderLimitReached as exc:
        return Response({"error": str(exc)}, status=status.HTTP_429_TOO_MANY_REQUESTS)
    except RenderServiceUnavailable as exc:
        return Response({"error": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    except ValueError as exc:  # ControlError, PresetError
        return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


# --- token ------------------------------------------------------------------------------------

class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(operation_id="token_obtain", request=s.TokenRequestSerializer,
                   responses={200: s.TokenSerializer, **_errors(400)},
                   summary="Your API token, from your username and password")
    def post(self, request):
        data = _valid(s.TokenRequestSerializer, _body(request))
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None:
            raise ValidationError("wrong username or password")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


# --- scores -----------------------------------------------------------------------------------

class ScoreListView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(operation_id="scores_list", responses={200: s.ScoreSerializer(many=True)},
                   summary="Demo scores and your uploads")
    def get(self, request):
        return Response(api_selectors.api_scores_visible(user=request.user))

    @extend_schema(operation_id="scores_upload",
                   request={"multipart/form-data": s.ScoreUploadSerializer},
                   responses={201: s.ScoreSerializer, **_errors(400, 401, 415)},
                   summary="Upload a score (same checks and messages as the web upload)")
    def post(self, request):
        if (too_large := upload_too_large(request)) is not None:
            raise ValidationError(too_large)
        data = _valid(s.ScoreUploadSerializer, request.data)
        try:
            score = score_create_from_upload(
                uploaded_file=data["file"], owner=request.user, title=data.get("title", ""))
        except ScoreError as exc:  # the web upload's message, as it is
            return Response({"error": str(exc), "fields": {"file": [str(exc)]}},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(api_selectors.api_score(score=score), status=status.HTTP_201_CREATED)


class ScoreDetailView(APIView):
    @extend_schema(operation_id="scores_retrieve",
                   responses={200: s.ScoreSerializer, **_errors(404)},
                   summary="A score (a demo, or one of yours)")
    def get(self, request, score_id):
        return Response(api_selectors.api_score(score=score_or_404(request, score_id)))


class ScoreRenderView(APIView):
    permission_classes = USER_OR_SESSION

    @extend_schema(operation_id="scores_render", request=s.RenderRequestSerializer,
                   responses={201: s.JobSerializer, **_errors(400, 401, 403, 404, 429, 503)},
                   summary="Render the score with any controls; stream ws_url or poll the job "
                           "(anonymous: a browser session, which owns the job)")
    def post(self, request, score_id):
        score = score_or_404(request, score_id)
        body = _body(request)
        data = _valid(s.RenderRequestCheck, body)
        # an anonymous requester owns its jobs by its session (made now if need be)
        session_key = request_session_key(request, create=not request.user.is_authenticated)
        controls = body.get("controls") or {}
        ref_id = controls.get("reference_id") if isinstance(controls, dict) else None
        if ref_id not in (None, "") and reference_get_visible(
                reference_id=ref_id, user=request.user, session_key=session_key) is None:
            raise ValidationError("no such reference performance (it is not yours, or it was "
                                  "deleted)")
        return _render_refusals(lambda: _job_created(render_job_create(
            score=score, user=request.user, session_key=session_key, seed=data.get("seed"),
            controls=controls, client_addr=client_addr(request))))


class ScorePerformancesView(APIView):
    @extend_schema(operation_id="scores_performances",
                   responses={200: s.PerformanceSummarySerializer(many=True), **_errors(404)},
                   summary="Your performances of the score, oldest first")
    def get(self, request, score_id):
        score = score_or_404(request, score_id)
        return Response(api_selectors.api_performances_for_score(score=score, user=request.user))


# --- jobs and performances --------------------------------------------------------------------

def _job_or_404(request, job_id):
    """The requester's job (a user's, or an anonymous session's), else 404."""
    return visible_or_404(request, job_get_for_requester, "job", job_id=job_id)


class JobView(APIView):
    permission_classes = USER_OR_SESSION

    @extend_schema(operation_id="jobs_retrieve",
                   responses={200: s.JobSerializer, **_errors(401, 404)},
                   summary="A render job's state and progress (poll until it has ended)")
    def get(self, request, job_id):
        job = _job_or_404(request, job_id)
        render_jobs_fail_stale(job_ids=[job.id])
        job.refresh_from_db()
        return Response(api_selectors.api_job(job=job))


class JobCancelView(APIView):
    permission_classes = USER_OR_SESSION

    @extend_schema(operation_id="jobs_cancel", request=None,
                   responses={200: s.JobSerializer, **_errors(401, 403, 404, 409)},
                   summary="Cancel a queued or running render")
    def post(self, request, job_id):
        job = _job_or_404(request, job_id)
        try:
            job = render_job_cancel(job=job)
        except JobNotActive as exc:
            return Response({"error": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(api_selectors.api_job(job=job))


class PerformanceView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="performances_retrieve",
                   responses={200: s.PerformanceSerializer, **_errors(401, 404)},
                   summary="A performance with every note and its download links")
    def get(self, request, performance_id):
        perf = performance_get_visible(performance_id=performance_id,
                                                        user=request.user, session_key="")
        if perf is None:
            raise Http404("no such performance")
        return Response(api_selectors.api_performance(performance=perf))


class PerformanceDownloadView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="performances_download",
                   responses={**{(200, ctype): OpenApiTypes.BINARY for ctype in (
                       "audio/midi", "audio/wav", "audio/ogg", "text/csv")},
                       **_errors(401, 404), 503: OpenApiResponse(
                           s.ErrorSerializer, description="Audio could not be made")},
                   summary="Download a performance as mid, wav, ogg or csv")
    def get(self, request, performance_id, fmt):
        perf = performance_get_visible(performance_id=performance_id,
                                                        user=request.user, session_key="")
        if perf is None or fmt not in DOWNLOAD_FORMATS:
            raise Http404("no such performance" if perf is None else "unknown format")
        try:
            return performance_file_response(performance=perf, fmt=fmt)
        except AudioUnavailable as exc:
            return Response({"error": str(exc)}, status=503)
