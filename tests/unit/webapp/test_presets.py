"""Preset services and selectors on the test database (no worker: jobs are queued, never run)."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from webapp.models import Performance, ReferencePerformance, RenderJob, Score
from webapp.presets import selectors, services
from webapp.presets.models import Preset
from webapp.presets.services import PresetError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _user(name):
    return get_user_model().objects.create_user(name, password="x-Long-passw0rd!")


def _score(owner=None, **kw):
    return Score.objects.create(owner=owner, title=kw.pop("title", "S"), original_filename="s.mid",
                                file="scores/s.mid", parsed="parsed/s.npz", format="midi",
                                n_notes=10, duration_beat=8.0, mei="", **kw)


def _reference(owner, score):
    ref = ReferencePerformance(owner=owner, score=score, title="Horowitz", n_matched=42)
    ref.encoded.save("ref.npz", ContentFile(b"npz bytes"), save=False)
    ref.save()
    return ref


def _take(owner, score, controls, seed=7):
    job = RenderJob.objects.create(score=score, owner=owner, seed=seed, controls=controls,
                                   state=RenderJob.State.DONE)
    perf = Performance(job=job, score=score, seed=seed, controls=controls, notes=[], n_notes=0,
                       duration_sec=1.0)
    perf.midi.save("p.mid", ContentFile(b"MThd"), save=False)
    perf.save()
    return perf


def test_a_take_with_its_reference_becomes_a_preset_that_outlives_the_reference():
    alice = _user("alice")
    score = _score(alice)
    ref = _reference(alice, score)
    perf = _take(alice, score, {"mode": "perturb", "delta": [1, 0, 0, 0, -1],
                                "reference_id": str(ref.id)})
    preset = services.preset_create_from_performance(performance=perf, owner=alice,
                                                     name="  Bright   and  fast ")
    assert preset.name == "Bright and fast" and preset.seed == 7
    assert preset.controls == {"mode": "perturb", "delta": [1.0, 0.0, 0.0, 0.0, -1.0]}
    assert preset.reference_id != ref.id and preset.reference.score is None
    assert preset.reference.encoded.read() == b"npz bytes"
    ref.delete()  # the owner deletes the upload from their score page
    other = _score(title="Other", is_demo=True, demo_key="d")
    job = services.preset_apply(preset=Preset.objects.get(id=preset.id), score=other, user=None,
                                session_key="sess")
    assert job.seed == 7 and job.controls["reference_id"] == str(preset.reference_id)
    assert job.controls["delta"] == [1.0, 0.0, 0.0, 0.0, -1.0] and job.owner is None


def test_a_variation_of_a_preset_replaces_its_seed_and_controls_and_keeps_its_reference():
    alice, bob = _user("alice"), _user("bob")
    score = _score(alice)
    ref = _reference(alice, score)
    perf = _take(alice, score, {"mode": "perturb", "delta": [1, 0, 0, 0, -1],
                                "expressiveness": 1.2, "reference_id": str(ref.id)})
    preset = services.preset_create_from_performance(performance=perf, owner=alice, name="P")
    demo = _score(title="Other", is_demo=True, demo_key="d")
    varied = {"mode": "perturb", "delta": [1, 0, 0.7, 0, -1], "expressiveness": 1.2}
    job = services.preset_apply(preset=preset, score=demo, user=bob, session_key="",
                                variation={"seed": 9, "controls": varied})
    assert job.seed == 9 and job.controls == {
        "mode": "perturb", "delta": [1.0, 0.0, 0.7, 0.0, -1.0], "expressiveness": 1.2,
        "reference_id": str(preset.reference_id)}
    job = services.preset_apply(preset=preset, score=demo, user=None, session_key="s2",
                                variation={"seed": None, "controls": {}})
    assert job.controls == {"reference_id": str(preset.reference_id)}
    assert 0 <= job.seed < 2**31
    for variation, message in [
            ({"seed": "x", "controls": {}}, "seed must be an integer"),
            ({"seed": 1, "controls": "bold"}, "controls must be a JSON object"),
            ({"seed": 1, "controls": {"reference_id": str(ref.id)}}, "its own reference")]:
        with pytest.raises(PresetError, match=message):
            services.preset_apply(preset=preset, score=demo, user=None, session_key="s3",
                                  variation=variation)


def test_deleting_a_preset_deletes_its_reference_copy_and_files(
        django_capture_on_commit_callbacks):
    alice = _user("alice")
    score = _score(alice)
    perf = _take(alice, score, {"reference_id": str(_reference(alice, score).id)})
    preset = services.preset_create_from_performance(performance=perf, owner=alice, name="p")
    path, copy_id = Path(preset.reference.encoded.path), preset.reference_id
    assert path.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        services.preset_delete(preset=preset)
    assert not ReferencePerformance.objects.filter(id=copy_id).exists() and not path.exists()
    assert ReferencePerformance.objects.count() == 1  # the original stays


def test_deleting_the_owner_deletes_presets_and_their_references():
    alice = _user("alice")
    score = _score(alice)
    perf = _take(alice, score, {"reference_id": str(_reference(alice, score).id)})
    services.preset_create_from_performance(performance=perf, owner=alice, name="p")
    alice.delete()
    assert Preset.objects.count() == 0 and ReferencePerformance.objects.count() == 0


def test_a_take_whose_reference_was_deleted_cannot_carry_its_style():
    alice = _user("alice")
    score = _score(alice)
    ref = _reference(alice, score)
    perf = _take(alice, score, {"reference_id": str(ref.id)})
    ref.delete()
    with pytest.raises(PresetError, match="has been deleted"):
        services.preset_create_from_performance(performance=perf, owner=alice, name="p")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "  "}, "needs a name"),
    ({"name": "x" * 101}, "longer than 100"),
    ({"name": "p", "seed": "abc"}, "seed must be an integer"),
    ({"name": "p", "seed": -1}, "between 0 and 2147483647"),
    ({"name": "p", "controls": {"loudness": 1}}, "unknown control"),
    ({"name": "p", "controls": {"delta": [1, 2]}}, "delta must be a list of 5"),
    ({"name": "p", "controls": {"reference_id": "4d1c1f37-0e6a-4c55-9d67-7b9d7fbd3b51"}},
     "comes from the take"),
])
def test_bad_presets_are_refused_with_the_render_messages(kwargs, message):
    with pytest.raises(PresetError, match=message):
        services.preset_create(owner=_user("alice"), **kwargs)


def test_sharing_stopping_and_visibility():
    alice, bob = _user("alice"), _user("bob")
    preset = services.preset_create(owner=alice, name="p", seed=3, controls={"expressiveness": 1.5})
    token = preset.share_token
    assert len(token) >= 22
    assert selectors.preset_get_shared(token=token) is None  # private
    assert selectors.preset_get_owned(preset_id=preset.id, user=bob) is None
    assert selectors.preset_get_owned(preset_id=preset.id, user=alice) == preset
    services.preset_share(preset=preset)
    assert selectors.preset_get_shared(token=token) == preset
    assert list(selectors.preset_list_shared()) == [preset]
    services.preset_unshare(preset=preset)
    assert selectors.preset_get_shared(token=token) is None
    services.preset_share(preset=preset)
    assert preset.share_token != token and selectors.preset_get_shared(token=token) is None
    summary = selectors.preset_summary(preset=preset, for_owner=False)
    assert "id" not in summary and summary["share_url"] == f"/p/{preset.share_token}/"


def test_rename_and_edit_the_description():
    alice = _user("alice")
    preset = services.preset_create(owner=alice, name="p", description="loud")
    services.preset_update(preset=preset, name="renamed")
    preset.refresh_from_db()
    assert (preset.name, preset.description) == ("renamed", "loud")
    services.preset_update(preset=preset, description=" soft ")
    preset.refresh_from_db()
    assert (preset.name, preset.description) == ("renamed", "soft")
    with pytest.raises(PresetError):
        services.preset_update(preset=preset, name="")
