"""Who may see what: uploads are private, jobs and their sockets belong to their maker (a user,
or an anonymous browser session), through the API as on the pages."""
from __future__ import annotations

import uuid

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.integration.stack import Client

PASSWORD = "a-Long-passw0rd!"


@pytest.fixture
def owned(user, good_inputs):
    return user, user.upload_ok(good_inputs["musicxml"])


def test_someone_elses_score_is_not_found(stack, owned):
    owner, score = owned
    other = Client(stack).signup("intruder" + score[:8])
    anon = Client(stack)
    for c in (other, anon):
        for path in (f"/scores/{score}/", f"/scores/{score}/mei", f"/scores/{score}/notemap.json",
                     f"/scores/{score}/takes.json"):
            assert c.get(path).status_code == 404, path
        assert c.render(score).status_code == 404
    assert score not in other.get("/").text
    assert score in owner.get("/").text
    assert other.post(f"/scores/{score}/delete").status_code == 404
    # the owner can delete it: back home, and it is gone
    r = owner.post(f"/scores/{score}/delete", allow_redirects=False)
    assert r.status_code == 302 and owner.get(f"/scores/{score}/").status_code == 404


def test_jobs_sockets_and_takes_belong_to_their_owner(stack, owned):
    owner, score = owned
    job = owner.render(score, seed=11).json()
    with owner.socket(job["job_id"]) as ws:
        done = ws.messages_until_end()[-1]
    assert done["type"] == "done"
    other = Client(stack).signup("other" + score[:8])
    with pytest.raises(InvalidStatus):
        other.socket(job["job_id"])
    with pytest.raises(InvalidStatus):
        Client(stack).socket(job["job_id"])
    assert other.get(f"/api/v1/jobs/{job['job_id']}/").status_code == 404
    assert other.post(f"/api/v1/jobs/{job['job_id']}/cancel/").status_code == 404
    for url in [done["notes_url"], *done["downloads"].values()]:
        assert other.get(url).status_code == 404, url
        assert owner.get(url).status_code == 200, url


def test_socket_from_a_foreign_origin_is_refused(stack, owned):
    from websockets.sync.client import connect

    owner, score = owned
    job = owner.render(score).json()
    cookie = "; ".join(f"{c.name}={c.value}" for c in owner.s.cookies)
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{stack.port}/ws/jobs/{job['job_id']}/",
                origin="http://evil.example", additional_headers={"Cookie": cookie})


def test_render_without_csrf_is_forbidden(stack, owned):
    owner, score = owned
    r = owner.s.post(owner.url(f"/api/v1/scores/{score}/render/"), json={"seed": 1})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]


def test_bad_render_requests_get_clear_errors(stack, owned):
    owner, score = owned
    r = owner.render(score, seed="abc")
    assert r.status_code == 400 and r.json()["error"] == "seed: A valid integer is required."
    r = owner.post(f"/api/v1/scores/{score}/render/", data="{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON parse error" in r.json()["error"]
    r = owner.render(score, controls={"loudness": 3})
    assert r.status_code == 400 and "unknown control(s): loudness" in r.json()["error"]
    assert owner.get(f"/scores/{score}/takes.json").json() == []


def test_anonymous_visitor_renders_a_demo_and_only_sees_their_own_takes(stack):
    out = stack.manage("load_demos")
    assert stack.manage("load_demos").count("already loaded") == out.count("+ ")  # idempotent
    anon = Client(stack)
    home = anon.get("/").text
    assert "Mazurka" in home
    import re

    demo = re.search(r'href="/scores/([0-9a-f-]{36})/">Frédéric Chopin', home).group(1)
    job = anon.render(demo, seed=4).json()
    with anon.socket(job["job_id"]) as ws:
        done = ws.messages_until_end()[-1]
    assert done["type"] == "done"
    assert [t["performance_id"] for t in anon.get(f"/scores/{demo}/takes.json").json()] == [
        done["performance_id"]]
    stranger = Client(stack)
    assert stranger.get(f"/scores/{demo}/").status_code == 200
    assert stranger.get(f"/scores/{demo}/takes.json").json() == []
    assert stranger.get(done["notes_url"]).status_code == 404
    with pytest.raises(InvalidStatus):
        stranger.socket(job["job_id"])


def test_an_anonymous_session_owns_its_jobs_through_the_api(stack, big_score):
    """What the score page does for a visitor, through /api/v1: render (the session is made),
    poll and cancel with the session's CSRF token; a write without it is refused; other
    sessions, users and token clients do not find the job; no cookie and no token is a 401."""
    name = f"d{uuid.uuid4().hex[:10]}"
    uploader = Client(stack).signup(name, PASSWORD)
    demo = uploader.upload_ok(big_score)  # made a demo: long enough to cancel midway
    stack.manage("shell", "-c", "from webapp.models import Score; "
                 f"assert Score.objects.filter(id='{demo}').update(is_demo=True) == 1")
    anon = Client(stack)
    assert anon.get(f"/scores/{demo}/").status_code == 200  # the page sets the CSRF cookie
    jobs_before = stack.count("webapp_renderjob")
    r = anon.s.post(anon.url(f"/api/v1/scores/{demo}/render/"), json={"seed": 3})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = requests.post(anon.url(f"/api/v1/scores/{demo}/render/"), json={"seed": 3}, timeout=60)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Token"
    assert stack.count("webapp_renderjob") == jobs_before  # refused: nothing queued

    r = anon.render(demo, seed=3)
    assert r.status_code == 201, r.text
    job = r.json()
    assert "sessionid" in anon.s.cookies
    assert job["status_url"] == f"/api/v1/jobs/{job['job_id']}/"
    assert job["cancel_url"] == f"/api/v1/jobs/{job['job_id']}/cancel/"
    assert anon.get(job["status_url"]).json()["job_id"] == job["job_id"]
    token = requests.post(anon.url("/api/v1/token/"), timeout=60,
                          json={"username": name, "password": PASSWORD}).json()["token"]
    scripted = requests.Session()
    scripted.headers["Authorization"] = f"Token {token}"
    stranger = Client(stack)
    for c in (stranger, uploader):
        assert c.get(job["status_url"]).status_code == 404
        assert c.post(job["cancel_url"]).status_code == 404
    assert scripted.get(anon.url(job["status_url"]), timeout=60).status_code == 404
    assert scripted.post(anon.url(job["cancel_url"]), timeout=60).status_code == 404

    with anon.socket(job["job_id"]) as ws:
        ws.messages_until_end(stop_after_notes=1)
        r = anon.s.post(anon.url(job["cancel_url"]))
        assert r.status_code == 403 and "CSRF" in r.json()["error"]
        r = anon.post(job["cancel_url"])
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        assert ws.messages_until_end()[-1] == {"type": "state", "state": "cancelled",
                                               "message": "cancelled by the user"}
    r = anon.post(job["cancel_url"])
    assert r.status_code == 409 and "already ended" in r.json()["error"]
    assert anon.get(job["status_url"]).json()["state"] == "cancelled"
    # The token client renders as before (no session, no CSRF token).
    r = scripted.post(anon.url(f"/api/v1/scores/{demo}/render/"), json={"seed": 5}, timeout=60)
    assert r.status_code == 201 and "sessionid" not in r.cookies, r.text
    assert scripted.post(anon.url(r.json()["cancel_url"]), timeout=60).json()["state"] == "cancelled"
