"""Reads of presets: what a requester may see, and the JSON shape pages and the API return."""
from __future__ import annotations

import uuid

from django.urls import reverse

from webapp.presets.models import Preset


def preset_get_owned(*, preset_id: uuid.UUID, user) -> Preset | None:
    """The preset if ``user`` owns it, else None (private presets exist only for their owner)."""
    if user is None or not user.is_authenticated:
        return None
    return (Preset.objects.select_related("reference", "source_performance__score")
            .filter(id=preset_id, owner=user).first())


def preset_get_shared(*, token: str) -> Preset | None:
    """The preset shared under ``token``, else None (never shared, stopped, or deleted)."""
    if not token or len(token) > 64:
        return None
    return (Preset.objects.select_related("owner", "reference", "source_performance__score")
            .filter(share_token=token, is_shared=True).first())


def preset_list_for_user(*, user):
    """The user's presets, most recently changed first."""
    if user is None or not user.is_authenticated:
        return Preset.objects.none()
    return Preset.objects.filter(owner=user).select_related("reference")


def preset_list_shared():
    """Every shared preset, most recently changed first."""
    return Preset.objects.filter(is_shared=True).select_related("owner", "reference")


def preset_share_path(*, preset: Preset) -> str | None:
    """The path of the preset's share link, or None while it is not shared."""
    return reverse("preset-shared", args=[preset.share_token]) if preset.is_shared else None


def preset_summary(*, preset: Preset, for_owner: bool) -> dict:
    """What pages and the API say about a preset.

    Parameters
    ----------
    preset : Preset
    for_owner : bool
        Adds what only the owner sees (id, share token state); others see the public shape.
    """
    ref = preset.reference
    perf = preset.source_performance
    out = {
        "name": preset.name, "description": preset.description, "seed": preset.seed,
        "controls": preset.controls,
        "reference": ({"title": str(ref), "n_matched": ref.n_matched} if ref else None),
        "owner": preset.owner.get_username(),
        "is_shared": preset.is_shared,
        "share_url": preset_share_path(preset=preset),
        "source": ({"score_title": perf.score.title, "n_notes": perf.n_notes,
                    "duration": round(perf.duration_sec, 3)} if perf else None),
        "created": preset.created.isoformat(), "updated": preset.updated.isoformat(),
    }
    if for_owner:
        out["id"] = str(preset.id)
    return out
