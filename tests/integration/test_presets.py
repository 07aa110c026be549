"""Presets end to end (real worker): who may see and apply a preset, sharing and stopping it,
rename and delete, applying it renders with its seed and controls (reproducibly), and a preset
with a reference performance keeps working after the reference is deleted."""
from __future__ import annotations

import json
import lzma
import re
import uuid

import pytest
import requests

from tests.integration.stack import Client

CONTROLS = {"mode": "perturb", "delta": [1.5, -1, 0, 0.5, 0], "base_tempo_bpm": 90,
            "expressiveness": 1.3}


def follow(client: Client, job: dict) -> tuple[dict, list[dict]]:
    """Follow a job's socket to 'done'; (done message, streamed notes)."""
    with client.socket(job["job_id"]) as ws:
        msgs = ws.messages_until_end()
    assert msgs[-1]["type"] == "done", msgs[-1]
    return msgs[-1], [n for m in msgs if m["type"] == "notes" for n in m["notes"]]


def key(notes):
    return [(n["i"], n["onset"], n["duration"], n["velocity"])
            for n in sorted(notes, key=lambda n: n["i"])]


def post_json(client: Client, path: str, body: dict):
    return client.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"})


def save_preset(client: Client, performance_id: str, name: str) -> str:
    """Save a take as a preset, as the score page does (the API's create, with the session)."""
    r = post_json(client, "/api/v1/presets/", {"performance_id": performance_id, "name": name})
    assert r.status_code == 201, r.text
    assert r.json()["page_url"] == f"/presets/{r.json()['id']}/"
    return r.json()["id"]


def apply(client: Client, apply_url: str, score_id: str) -> requests.Response:
    """Render ``score_id`` with a preset, as the score page does: POST to the preset's
    ``apply_url`` (the API's) with the session and its CSRF token."""
    return post_json(client, apply_url, {"score_id": score_id})


def smallest_demo(stack, client: Client) -> dict:
    stack.manage("load_demos")
    demos = [s for s in client.get("/api/v1/scores/").json() if s["is_demo"]]
    return min(demos, key=lambda s: s["n_notes"])


@pytest.fixture
def take(user, medium_score):
    """(owner client, score id, done message, notes) of a take rendered with CONTROLS, seed 21."""
    score = user.upload_ok(medium_score)
    r = user.render(score, seed=21, controls=CONTROLS)
    assert r.status_code == 201, r.text
    done, notes = follow(user, r.json())
    return user, score, done, notes


def test_private_presets_are_their_owners_only(stack, take):
    owner, score, done, _ = take
    pid = save_preset(owner, done["performance_id"], "Bold rubato")
    info = owner.get(f"/presets/{pid}/preset.json").json()
    assert info["controls"] == CONTROLS and info["seed"] == 21 and info["is_shared"] is False
    assert info["share_url"] is None and info["source"]["n_notes"] == done["n_notes"]
    assert "Bold rubato" in owner.get("/presets/").text
    other = Client(stack).signup(f"o{uuid.uuid4().hex[:10]}")
    anon = Client(stack)
    for c in (other, anon):
        for path in (f"/presets/{pid}/", f"/presets/{pid}/preset.json", f"/presets/{pid}/notes.json"):
            assert c.get(path).status_code == 404, path
        for path in (f"/presets/{pid}/edit", f"/presets/{pid}/share", f"/presets/{pid}/delete"):
            assert c.post(path, data={"name": "x"}).status_code == 404, path
        # applying a private preset needs its owner: a stranger's 404, a visitor's 401 (sign in)
        assert apply(c, f"/api/v1/presets/{pid}/apply/", score).status_code == (404 if c is other else 401)
        assert "Bold rubato" not in c.get("/presets/shared/").text
    assert "Bold rubato" not in other.get("/presets/").text
    # Someone else's take cannot be saved; nor can an anonymous visitor save one.
    r = post_json(other, "/api/v1/presets/", {"performance_id": done["performance_id"], "name": "x"})
    assert r.status_code == 404 and r.json() == {"error": "no such performance"}
    r = post_json(anon, "/api/v1/presets/", {"performance_id": done["performance_id"], "name": "x"})
    assert r.status_code == 401 and r.json() == {"error": "Authentication credentials were not provided."}
    r = post_json(owner, "/api/v1/presets/", {"performance_id": done["performance_id"], "name": " "})
    assert r.status_code == 400 and r.json()["error"] == "name: the preset needs a name"
    assert stack.sql("SELECT COUNT(*) FROM presets_preset WHERE id = %s",
                     pid if stack.db == "postgresql" else pid.replace("-", ""))[0][0] == 1


def test_share_stop_sharing_rename_delete(stack, take):
    owner, _, done, notes = take
    pid = save_preset(owner, done["performance_id"], "Soft")
    assert owner.post(f"/presets/{pid}/share", allow_redirects=False).status_code == 302
    page = owner.get(f"/presets/{pid}/").text
    link = re.search(r'class="preset-share-link" href="(/p/[A-Za-z0-9_-]{22,}/)"', page).group(1)
    anon = Client(stack)
    shared = anon.get(link)
    assert shared.status_code == 200 and "Soft" in shared.text and "preset-listen" in shared.text
    assert "preset-edit-form" not in shared.text, "only the owner's page has the edit form"
    assert link in anon.get("/presets/shared/").text
    listen = anon.get(link + "notes.json").json()
    assert listen["notes"] == owner.get(done["notes_url"]).json()["notes"]
    assert len(listen["notes"]) == len(notes)
    info = anon.get(link + "preset.json").json()
    assert "id" not in info and info["name"] == "Soft" and info["controls"] == CONTROLS

    r = owner.post(f"/presets/{pid}/edit", data={"name": "Soft and slow", "description": "for Bach"},
                   allow_redirects=False)
    assert r.status_code == 302
    assert anon.get(link + "preset.json").json()["description"] == "for Bach"
    assert "Soft and slow" in anon.get("/presets/shared/").text

    assert owner.post(f"/presets/{pid}/unshare", allow_redirects=False).status_code == 302
    for path in (link, link + "preset.json", link + "notes.json"):
        assert anon.get(path).status_code == 404, path
    assert link not in anon.get("/presets/shared/").text
    assert owner.post(f"/presets/{pid}/share", allow_redirects=False).status_code == 302  # shared again: a new link
    page = owner.get(f"/presets/{pid}/").text
    link2 = re.search(r'class="preset-share-link" href="(/p/[A-Za-z0-9_-]{22,}/)"', page).group(1)
    assert link2 != link and anon.get(link).status_code == 404 and anon.get(link2).status_code == 200

    assert owner.post(f"/presets/{pid}/delete", allow_redirects=False).status_code == 302
    assert owner.get(f"/presets/{pid}/").status_code == 404
    assert anon.get(link2).status_code == 404
    assert "Soft and slow" not in owner.get("/presets/").text


def test_applying_a_preset_renders_its_controls_reproducibly(stack, take, medium_score, good_inputs):
    owner, _, done, _ = take
    pid = save_preset(owner, done["performance_id"], "Reproducible")
    apply_url = owner.get(f"/presets/{pid}/preset.json").json()["apply_url"]
    assert apply_url == f"/api/v1/presets/{pid}/apply/"
    other_score = owner.upload_ok(good_inputs["musicxml"])
    r = apply(owner, apply_url, other_score)
    assert r.status_code == 201, r.text
    assert r.json()["seed"] == 21 and r.json()["controls"] == CONTROLS
    done1, notes1 = follow(owner, r.json())
    stored = owner.get(done1["notes_url"]).json()
    assert stored["controls"] == CONTROLS and stored["seed"] == 21 and stored["notes"] == notes1
    done2, notes2 = follow(owner, apply(owner, apply_url, other_score).json())
    assert done2["performance_id"] != done1["performance_id"]
    assert key(notes2) == key(notes1), "the same preset on the same score gives the same notes"
    # A stranger cannot apply it, nor apply it to a score they cannot see.
    stranger = Client(stack).signup(f"s{uuid.uuid4().hex[:10]}")
    assert apply(stranger, apply_url, other_score).status_code == 404
    owner.post(f"/presets/{pid}/share")
    link = owner.get(f"/presets/{pid}/preset.json").json()["share_url"]
    shared_apply = stranger.get(f"{link}preset.json").json()["apply_url"]
    assert shared_apply == f"/api/v1/shared-presets/{link.strip('/').split('/')[-1]}/apply/"
    r = apply(stranger, shared_apply, other_score)
    assert r.status_code == 404 and r.json() == {"error": "no such score"}


def test_anyone_with_the_link_applies_it_to_a_demo(stack, take):
    owner, _, done, _ = take
    pid = save_preset(owner, done["performance_id"], "For everyone")
    owner.post(f"/presets/{pid}/share")
    link = owner.get(f"/presets/{pid}/preset.json").json()["share_url"]
    anon = Client(stack)
    demo = smallest_demo(stack, anon)
    assert f'href="/scores/{demo["score_id"]}/?preset=' in anon.get(link).text
    apply_url = anon.get(f"{link}preset.json").json()["apply_url"]
    r = apply(anon, apply_url, demo["score_id"])
    assert r.status_code == 201, r.text
    done_demo, notes = follow(anon, r.json())
    assert len(notes) == demo["n_notes"]
    stored = anon.get(done_demo["notes_url"]).json()
    assert stored["controls"] == CONTROLS and stored["seed"] == 21
    takes = anon.get(f"/scores/{demo['score_id']}/takes.json").json()
    assert [t["performance_id"] for t in takes] == [done_demo["performance_id"]]
    owner.post(f"/presets/{pid}/unshare")
    assert apply(anon, apply_url, demo["score_id"]).status_code == 404


REF_SCRIPT = """
from django.contrib.auth import get_user_model
from django.core.files import File
from ml.inference import reference_from_aligned, save_reference
from render.performance import load_aligned
from webapp.models import ReferencePerformance, Score
perf = load_aligned({match!r})
ref = reference_from_aligned(perf.score, perf)
save_reference({npz!r}, ref)
row = ReferencePerformance(owner=get_user_model().objects.get(username={user!r}),
                           score=Score.objects.get(id={score!r}), title='Gonzalez plays BWV 868',
                           n_matched=len(ref.index))
with open({npz!r}, 'rb') as f:
    row.encoded.save('{name}.npz', File(f), save=False)
row.save()
print('REF', row.id)
"""


@pytest.mark.data
def test_a_preset_with_a_reference_outlives_it_and_primes_another_score(
        stack, user, shared_data, medium_score, good_inputs, tmp_path):
    score = user.upload_ok(good_inputs["musicxml"])
    name = f"ref{uuid.uuid4().hex[:8]}"
    me = user.get("/presets/").text
    login = re.search(r'<span class="who">([^<]+)</span>', me).group(1)
    match = str(tmp_path / "GonzalezJ05M.match")
    (tmp_path / "GonzalezJ05M.match").write_bytes(
        lzma.open(shared_data / "nasap/Bach/Prelude/bwv_868/GonzalezJ05M.match.xz").read())
    script = REF_SCRIPT.format(match=match, name=name, npz=str(tmp_path / "ref.npz"), user=login,
                               score=score)
    out = stack.manage("shell", "-c", script)
    ref_id = re.search(r"REF ([0-9a-f-]{36})", out).group(1)
    r = user.render(score, seed=5, controls={"reference_id": ref_id})
    assert r.status_code == 201, r.text
    done, _ = follow(user, r.json())
    pid = save_preset(user, done["performance_id"], "In Gonzalez's style")
    info = user.get(f"/presets/{pid}/preset.json").json()
    assert info["reference"]["title"] == "Gonzalez plays BWV 868" and info["reference"]["n_matched"] > 100
    # The owner deletes the upload from their score page: the preset keeps its own copy.
    assert user.post(f"/references/{ref_id}/delete").status_code == 200
    assert stack.sql("SELECT COUNT(*) FROM webapp_referenceperformance WHERE score_id IS NULL")[0][0] >= 1
    other = user.upload_ok(medium_score)
    r = apply(user, f"/api/v1/presets/{pid}/apply/", other)
    assert r.status_code == 201, r.text
    copy_id = r.json()["controls"]["reference_id"]
    assert copy_id != ref_id
    done_ref, notes_ref = follow(user, r.json())
    assert user.get(done_ref["notes_url"]).json()["controls"] == {"reference_id": copy_id}
    # The reference changes the take: the same seed without it gives other notes.
    plain, notes_plain = follow(user, user.render(other, seed=5).json())
    assert key(notes_plain) != key(notes_ref)
    # Shared, a stranger applies it too (the preset authorises its reference) ...
    user.post(f"/presets/{pid}/share")
    link = user.get(f"/presets/{pid}/preset.json").json()["share_url"]
    anon = Client(stack)
    demo = smallest_demo(stack, anon)
    r = apply(anon, anon.get(f"{link}preset.json").json()["apply_url"], demo["score_id"])
    assert r.status_code == 201 and r.json()["controls"]["reference_id"] == copy_id
    follow(anon, r.json())
    # ... but cannot name that reference in a render of their own.
    r = anon.render(demo["score_id"], controls={"reference_id": copy_id})
    assert r.status_code == 400 and "no such reference" in r.json()["error"]
    # Deleting the preset deletes its copy.
    assert user.post(f"/presets/{pid}/delete", allow_redirects=False).status_code == 302
    assert stack.sql("SELECT COUNT(*) FROM webapp_referenceperformance WHERE id = %s",
                     copy_id if stack.db == "postgresql" else copy_id.replace("-", ""))[0][0] == 0
