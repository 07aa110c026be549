"""Who may see what: uploads are private, jobs and their sockets belong to their maker."""
from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.stack import Client


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
    assert other.get(f"/jobs/{job['job_id']}/").status_code == 404
    assert other.post(f"/jobs/{job['job_id']}/cancel").status_code == 404
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
    r = owner.s.post(owner.url(f"/scores/{score}/render"), json={"seed": 1})
    assert r.status_code == 403


def test_bad_render_requests_get_clear_errors(stack, owned):
    owner, score = owned
    assert owner.render(score, seed="abc").json() == {"error": "seed must be an integer"}
    r = owner.post(f"/scores/{score}/render", data="{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
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
