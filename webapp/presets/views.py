"""Preset pages and their JSON endpoints (thin: one selector or service call each); saving a take
as a preset and applying one are the API's (webapp.api.preset_views), for the score page as for
scripts."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.presets import selectors, services
from webapp.presets.services import PresetError
from webapp.scores.selectors import score_list_demos, score_list_for_user


def preset_owned_or_404(request, preset_id):
    """The requester's own preset, else 404 (also used by the API views)."""
    preset = selectors.preset_get_owned(preset_id=preset_id, user=request.user)
    if preset is None:
        raise Http404("no such preset")
    return preset


def preset_shared_or_404(token):
    """A preset shared under ``token``, else 404 (also used by the API views)."""
    preset = selectors.preset_get_shared(token=token)
    if preset is None:
        raise Http404("no such preset (it may no longer be shared)")
    return preset


def _apply_targets(request) -> dict:
    return {"demos": score_list_demos(),
            "my_scores": score_list_for_user(user=request.user)}


@require_GET
@login_required
def preset_list(request):
    return render(request, "presets/list.html",
                  {"presets": selectors.preset_list_for_user(user=request.user)})


@require_GET
def preset_list_shared(request):
    return render(request, "presets/shared_list.html",
                  {"presets": selectors.preset_list_shared()})


@require_GET
def preset_detail(request, preset_id):
    preset = preset_owned_or_404(request, preset_id)
    return render(request, "presets/detail.html", {
        "preset": preset, "key": str(preset.id), "manage": True,
        "share_url": selectors.preset_share_path(preset=preset),
        "notes_url": reverse("preset-notes", args=[preset.id]),
        **_apply_targets(request)})


@require_GET
def preset_shared(request, token):
    preset = preset_shared_or_404(token)
    return render(request, "presets/detail.html", {
        "preset": preset, "key": token, "manage": False,
        "share_url": selectors.preset_share_path(preset=preset),
        "notes_url": reverse("preset-shared-notes", args=[token]),
        **_apply_targets(request)})


@require_POST
def preset_edit(request, preset_id):
    preset = preset_owned_or_404(request, preset_id)
    try:
        services.preset_update(preset=preset, name=request.POST.get("name"),
                               description=request.POST.get("description"))
    except PresetError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Saved.")
    return redirect("preset-detail", preset_id=preset.id)


@require_POST
def preset_share(request, preset_id):
    preset = services.preset_share(preset=preset_owned_or_404(request, preset_id))
    messages.success(request, "Shared: anyone with the link can open it.")
    return redirect("preset-detail", preset_id=preset.id)


@require_POST
def preset_unshare(request, preset_id):
    preset = services.preset_unshare(preset=preset_owned_or_404(request, preset_id))
    messages.success(request, "Sharing stopped: the old link no longer works.")
    return redirect("preset-detail", preset_id=preset.id)


@require_POST
def preset_delete(request, preset_id):
    preset = preset_owned_or_404(request, preset_id)
    services.preset_delete(preset=preset)
    messages.info(request, f"Deleted the preset “{preset.name}”.")
    return redirect("presets")


def _info(preset, *, apply_url: str, for_owner: bool) -> JsonResponse:
    """The preset, and the API URL that renders a score with it (POST {score_id, ...})."""
    return JsonResponse({**selectors.preset_summary(preset=preset, for_owner=for_owner),
                         "apply_url": apply_url})


@require_GET
def preset_info(request, preset_id):
    return _info(preset_owned_or_404(request, preset_id),
                 apply_url=reverse("api-preset-apply", args=[preset_id]), for_owner=True)


@require_GET
def preset_shared_info(request, token):
    return _info(preset_shared_or_404(token),
                 apply_url=reverse("api-shared-preset-apply", args=[token]), for_owner=False)


def _notes(preset) -> JsonResponse:
    perf = preset.source_performance
    if perf is None:
        raise Http404("this preset has no take to listen to")
    return JsonResponse({"seed": perf.seed, "notes": perf.notes, "pedal": perf.pedal, "n_notes": perf.n_notes,
                         "score_title": perf.score.title})


@require_GET
def preset_notes(request, preset_id):
    return _notes(preset_owned_or_404(request, preset_id))


@require_GET
def preset_shared_notes(request, token):
    return _notes(preset_shared_or_404(token))
