"""HTTP views (thin): parse the request, call one selector or service, answer."""
from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp import selectors, services
from webapp.errors import (JobNotActive, RenderLimitReached, RenderServiceUnavailable, ScoreError,
                           ScoreInUse)
from webapp.controls import default_temperature, max_variations
from webapp.downloads import AudioUnavailable, performance_file_response
from webapp.forms import SignUpForm, UploadForm
from webapp.references import ReferenceRefused, reference_create_from_upload
from webapp.references import reference_delete as reference_delete_service


def _session_key(request, *, create: bool = False) -> str:
    if not request.session.session_key and create:
        request.session["renders"] = True  # a non-empty session gets its cookie
        request.session.save()
    return request.session.session_key or ""


def client_addr(request) -> str:
    """The requester's network address (Daphne's peer; behind a proxy, start Daphne with
    --proxy-headers so that it is the client's)."""
    return (request.META.get("REMOTE_ADDR") or "")[:64]


def _score_or_404(request, score_id):
    score = selectors.score_get_visible(score_id=score_id, user=request.user)
    if score is None:
        raise Http404("no such score")
    return score


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_GET
def home(request):
    return render(request, "home.html", {
        "demos": selectors.score_list_demos(),
        "my_scores": selectors.score_list_for_user(user=request.user),
        "form": UploadForm(),
    })


@require_POST
@login_required
def upload(request):
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.UPLOAD_MAX_BYTES + 65536:
        # Refused before the body is parsed.
        form = UploadForm()
        upload_error = f"the file is over the limit of {settings.UPLOAD_MAX_BYTES / 1e6:g} MB"
        return render(request, "home.html", {
            "demos": selectors.score_list_demos(), "upload_error": upload_error,
            "my_scores": selectors.score_list_for_user(user=request.user), "form": form,
        }, status=400)
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            score = services.score_create_from_upload(
                uploaded_file=form.cleaned_data["file"], owner=request.user,
                title=form.cleaned_data["title"])
        except ScoreError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("score", score_id=score.id)
    return render(request, "home.html", {
        "demos": selectors.score_list_demos(),
        "my_scores": selectors.score_list_for_user(user=request.user), "form": form,
    }, status=400)


@require_GET
def score_page(request, score_id):
    score = _score_or_404(request, score_id)
    return render(request, "score.html", {
        "score": score,
        "can_delete": request.user.is_authenticated and score.owner_id == request.user.id,
        "max_concurrent": settings.RENDER_MAX_CONCURRENT_PER_USER,
        "max_takes": max_variations(),
        "default_temperature": default_temperature(),
    })


@require_POST
@login_required
def score_delete(request, score_id):
    score = _score_or_404(request, score_id)
    if score.owner_id != request.user.id:
        raise Http404("no such score")
    try:
        services.score_delete(score=score)
    except ScoreInUse as exc:
        messages.error(request, str(exc))
        return redirect("score", score_id=score.id)
    messages.info(request, f"Deleted “{score.title}”.")
    return redirect("home")


@require_GET
def score_mei(request, score_id):
    score = _score_or_404(request, score_id)
    return HttpResponse(score.mei, content_type="application/xml; charset=utf-8")


@require_GET
def score_notemap(request, score_id):
    return JsonResponse(_score_or_404(request, score_id).notemap)


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
    if ref_id not in (None, "") and selectors.reference_get_visible(
            reference_id=ref_id, user=request.user, session_key=session_key) is None:
        raise ValueError("no such reference performance (it is not yours, or it was deleted)")
    return {"seed": seed, "controls": controls}


@require_POST
def score_render(request, score_id):
    score = _score_or_404(request, score_id)
    session_key = _session_key(request, create=True)
    try:
        params = _render_params(request, session_key=session_key)
        job = services.render_job_create(score=score, user=request.user,
                                         session_key=session_key,
                                         client_addr=client_addr(request), **params)
    except ValueError as exc:
        return _error(str(exc), 400)
    except RenderLimitReached as exc:
        return _error(str(exc), 429)
    except RenderServiceUnavailable as exc:
        return _error(str(exc), 503)
    return JsonResponse(selectors.job_summary(job=job), status=201)


@require_GET
def score_bars(request, score_id):
    return JsonResponse(selectors.score_bars(score=_score_or_404(request, score_id)))


@require_http_methods(["GET", "POST"])
def score_references(request, score_id):
    """GET: the requester's references of the score; POST (multipart ``file``, ``title``):
    upload a MIDI performance, aligned before the answer (201 with its report, 400 refused)."""
    score = _score_or_404(request, score_id)
    if request.method == "GET":
        return JsonResponse(selectors.references_for_score(
            score=score, user=request.user, session_key=_session_key(request)), safe=False)
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.UPLOAD_MAX_BYTES + 65536:
        return _error(f"the file is over the limit of {settings.UPLOAD_MAX_BYTES / 1e6:g} MB", 400)
    upload = request.FILES.get("file")
    if upload is None:
        return _error("choose a MIDI file of a performance of this score", 400)
    try:
        ref = reference_create_from_upload(
            uploaded_file=upload, score=score, user=request.user,
            session_key=_session_key(request, create=True),
            title=(request.POST.get("title") or "")[:200])
    except ReferenceRefused as exc:
        return _error(str(exc), 400)
    return JsonResponse(selectors.reference_summary(reference=ref), status=201)


def _reference_or_404(request, reference_id):
    ref = selectors.reference_get_visible(reference_id=reference_id, user=request.user,
                                          session_key=_session_key(request))
    if ref is None:
        raise Http404("no such reference performance")
    return ref


@require_GET
def reference_notes(request, reference_id):
    ref = _reference_or_404(request, reference_id)
    return JsonResponse({**selectors.reference_summary(reference=ref), "notes": ref.notes})


@require_POST
def reference_delete(request, reference_id):
    reference_delete_service(reference=_reference_or_404(request, reference_id))
    return JsonResponse({"deleted": str(reference_id)})


@require_GET
def score_takes(request, score_id):
    score = _score_or_404(request, score_id)
    return JsonResponse(selectors.takes_for_score(score=score, user=request.user,
                                                  session_key=_session_key(request)), safe=False)


def _job_or_404(request, job_id):
    job = selectors.job_get_for_requester(job_id=job_id, user=request.user,
                                          session_key=_session_key(request))
    if job is None:
        raise Http404("no such job")
    return job


@require_GET
def job_status(request, job_id):
    job = _job_or_404(request, job_id)
    services.render_jobs_fail_stale(job_ids=[job.id])
    job.refresh_from_db()
    return JsonResponse(selectors.job_summary(job=job))


@require_POST
def job_cancel(request, job_id):
    job = _job_or_404(request, job_id)
    try:
        job = services.render_job_cancel(job=job)
    except JobNotActive as exc:
        return _error(str(exc), 409)
    return JsonResponse({"state": job.state})


def _perf_or_404(request, performance_id):
    perf = selectors.performance_get_visible(performance_id=performance_id, user=request.user,
                                             session_key=_session_key(request))
    if perf is None:
        raise Http404("no such performance")
    return perf


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
        return _error(str(exc), 503)


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, f"Welcome, {user.username}.")
        return redirect(reverse("home"))
    return render(request, "registration/signup.html", {"form": form},
                  status=400 if request.method == "POST" else 200)
