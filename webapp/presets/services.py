"""Writes of presets: save from a take or from controls, edit, share / stop sharing, delete, apply.

A preset's controls are validated by the same function that validates render controls
(webapp.jobs.controls.controls_clean, called by webapp.jobs.services.render_job_create); its reference is a
private copy of the encoded reference performance (see webapp.presets.models.Preset).
"""
from __future__ import annotations

import logging
import uuid

from django.core.files.base import ContentFile
from django.db import transaction

from webapp.jobs.controls import ControlError, controls_clean
from webapp.jobs.services import render_job_create
from webapp.models import Performance, ReferencePerformance, RenderJob, Score
from webapp.presets.models import Preset, new_share_token

log = logging.getLogger(__name__)
NAME_MAX = 100
DESCRIPTION_MAX = 2000


class PresetError(ValueError):
    """A preset that cannot be saved as asked; the message is shown to the user as it is."""


def _clean_text(*, name: str | None, description: str | None) -> dict:
    out = {}
    if name is not None:
        name = " ".join(str(name).split())
        if not name:
            raise PresetError("the preset needs a name")
        if len(name) > NAME_MAX:
            raise PresetError(f"the name is longer than {NAME_MAX} characters")
        out["name"] = name
    if description is not None:
        description = str(description).strip()
        if len(description) > DESCRIPTION_MAX:
            raise PresetError(f"the description is longer than {DESCRIPTION_MAX} characters")
        out["description"] = description
    return out


def _clean_seed(seed) -> int | None:
    if seed is None or seed == "":
        return None
    if isinstance(seed, bool):
        raise PresetError("seed must be an integer")
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise PresetError("seed must be an integer") from None
    if isinstance(seed, float) and seed != value or not 0 <= value < 2**31:
        raise PresetError("seed must be between 0 and 2147483647")
    return value


def _reference_copy(*, reference: ReferencePerformance, owner) -> ReferencePerformance:
    """The preset's own copy of a reference (no score: it is listed on no score page)."""
    copy = ReferencePerformance(score=None, owner=owner, title=str(reference)[:200],
                                original_filename=reference.original_filename,
                                report=reference.report, n_matched=reference.n_matched)
    if hasattr(reference, "notes"):  # the performed notes (to play the reference)
        copy.notes = reference.notes
    with reference.encoded.open("rb") as f:
        copy.encoded.save(f"preset-{uuid.uuid4().hex}.npz", ContentFile(f.read()), save=False)
    if reference.midi:
        try:
            with reference.midi.open("rb") as f:
                copy.midi.save(f"preset-{uuid.uuid4().hex}.mid", ContentFile(f.read()),
                               save=False)
        except FileNotFoundError:
            pass
    copy.save()
    return copy


def _split_controls(controls) -> tuple[dict, str | None]:
    """Validated controls without ``reference_id``, and that id (or None)."""
    try:
        cleaned = controls_clean(controls=dict(controls or {}))
    except ControlError as exc:
        raise PresetError(str(exc)) from None
    return cleaned, cleaned.pop("reference_id", None)


@transaction.atomic
def preset_create(*, owner, name: str, description: str = "", seed=None,
                  controls: dict | None = None,
                  reference: ReferencePerformance | None = None,
                  source_performance: Performance | None = None) -> Preset:
    """Save a private preset of ``owner``.

    Parameters
    ----------
    owner : User
    name, description : str
    seed : int, optional
        The seed to render with (None: a fresh one at each apply).
    controls : dict, optional
        Render controls (webapp.jobs.controls); ``reference_id`` is not accepted here: pass
        ``reference`` (which the caller has checked the owner may use).
    reference : ReferencePerformance, optional
        Copied into the preset (the preset keeps working when it is deleted).
    source_performance : Performance, optional
        The take the preset was saved from (played on the preset's page).

    Raises
    ------
    PresetError
        For a missing or too long name, a bad seed or bad controls (the render's messages).
    """
    text = _clean_text(name=name, description=description)
    cleaned, ref_id = _split_controls(controls)
    if ref_id is not None:
        raise PresetError("a preset's reference comes from the take it is saved from, "
                          "not from reference_id")
    preset = Preset(owner=owner, seed=_clean_seed(seed), controls=cleaned,
                    source_performance=source_performance, **text)
    if reference is not None:
        preset.reference = _reference_copy(reference=reference, owner=owner)
    preset.save()
    return preset


def preset_create_from_performance(*, performance: Performance, owner, name: str,
                                   description: str = "") -> Preset:
    """Save the interpretation of a take (its seed and controls, its reference) as a preset.

    Raises
    ------
    PresetError
        When the take's reference performance has been deleted meanwhile, or for a bad name.
    """
    controls = dict(performance.controls or {})
    ref_id = controls.pop("reference_id", None)
    reference = None
    if ref_id:
        reference = ReferencePerformance.objects.filter(id=ref_id).first()
        if reference is None:
            raise PresetError("the reference performance this take was rendered from has been "
                              "deleted, so its style cannot be saved")
    return preset_create(owner=owner, name=name, description=description,
                         seed=performance.seed, controls=controls, reference=reference,
                         source_performance=performance)


def preset_update(*, preset: Preset, name: str | None = None,
                  description: str | None = None) -> Preset:
    """Rename a preset and/or change its description (None leaves a field as it is)."""
    text = _clean_text(name=name, description=description)
    for key, value in text.items():
        setattr(preset, key, value)
    if text:
        preset.save(update_fields=[*text, "updated"])
    return preset


def preset_share(*, preset: Preset) -> Preset:
    """Make the preset visible to anyone with its link (and on the page of shared presets)."""
    if not preset.is_shared:
        preset.is_shared = True
        preset.save(update_fields=["is_shared", "updated"])
    return preset


def preset_unshare(*, preset: Preset) -> Preset:
    """Stop sharing: the old link answers 404 from now on, also if the preset is shared again."""
    if preset.is_shared:
        preset.is_shared = False
        preset.share_token = new_share_token()
        preset.save(update_fields=["is_shared", "share_token", "updated"])
    return preset


def preset_delete(*, preset: Preset) -> None:
    """Delete a preset and its copy of the reference (row and files)."""
    reference = preset.reference
    with transaction.atomic():
        preset.delete()
        if reference is not None and not reference.presets.exists():
            names = [reference.encoded.name, reference.midi.name if reference.midi else ""]
            reference.delete()
            storage = reference.encoded.storage
            transaction.on_commit(lambda: [storage.delete(n) for n in names if n])


def preset_apply(*, preset: Preset, score: Score, user, session_key: str,
                 variation: dict | None = None, client_addr: str = "") -> RenderJob:
    """Queue a render of ``score`` with the preset's seed, controls and reference.

    The requester may use the preset's reference because the preset is visible to them (the
    caller got it from a selector: their own preset, or a shared one).

    Parameters
    ----------
    variation : dict, optional
        ``{"seed", "controls"}`` as the score page's panel shows them after opening the preset
        (changed by the user: a variation of the preset). They replace the preset's seed and
        controls (a missing seed: a fresh one); the preset's reference is kept, and
        ``reference_id`` is refused in them.
    client_addr : str, optional
        The requester's network address (the per-address limit of anonymous renders).

    Raises
    ------
    PresetError
        For a bad seed in ``variation``, or a ``reference_id`` in its controls.
    ControlError
        When the controls do not fit this score (e.g. a section past its last bar).
    RenderLimitReached
        When the requester has too many renders in progress.
    RenderServiceUnavailable
        When the render queue cannot be reached (nothing is queued).
    """
    seed, controls = preset.seed, dict(preset.controls or {})
    if variation is not None:
        seed, controls = _clean_seed(variation.get("seed")), variation.get("controls") or {}
        if not isinstance(controls, dict):
            raise PresetError("controls must be a JSON object")
        if controls.get("reference_id"):
            raise PresetError("a preset keeps its own reference performance (if any); to render "
                              "in the style of yours, use Render")
        controls = {k: v for k, v in controls.items() if k != "reference_id"}
    if preset.reference_id is not None:
        controls["reference_id"] = str(preset.reference_id)
    return render_job_create(score=score, user=user, session_key=session_key, seed=seed,
                             controls=controls, client_addr=client_addr)

