"""Score pages (thin): home and upload, the score page, its engraving, note map, bars."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.errors import ScoreError, ScoreInUse
from webapp.http import score_or_404, upload_too_large
from webapp.jobs.controls import default_temperature, max_variations
from webapp.scores import selectors, services
from webapp.scores.forms import UploadForm
from webapp.scores.selectors import score_list_demos, score_list_for_user
from webapp.scores.services import score_create_from_upload


@require_GET
def home(request):
    return render(request, "home.html", {
        "demos": score_list_demos(),
        "my_scores": score_list_for_user(user=request.user),
        "form": UploadForm(),
    })


@require_POST
@login_required
def upload(request):
    if (upload_error := upload_too_large(request)) is not None:
        form = UploadForm()
        return render(request, "home.html", {
            "demos": score_list_demos(), "upload_error": upload_error,
            "my_scores": score_list_for_user(user=request.user), "form": form,
        }, status=400)
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            score = score_create_from_upload(
                uploaded_file=form.cleaned_data["file"], owner=request.user,
                title=form.cleaned_data["title"])
        except ScoreError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("score", score_id=score.id)
    return render(request, "home.html", {
        "demos": score_list_demos(),
        "my_scores": score_list_for_user(user=request.user), "form": form,
    }, status=400)


@require_GET
def score_page(request, score_id):
    score = score_or_404(request, score_id)
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
    score = score_or_404(request, score_id)
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
    score = score_or_404(request, score_id)
    return HttpResponse(score.mei, content_type="application/xml; charset=utf-8")


@require_GET
def score_notemap(request, score_id):
    return JsonResponse(score_or_404(request, score_id).notemap)


@require_GET
def score_bars(request, score_id):
    return JsonResponse(selectors.score_bars(score=score_or_404(request, score_id)))
