"""The JSON API against its own OpenAPI schema: a scripted session (token auth, upload, render with
every control, poll the job to done, performances, presets CRUD, sharing, applying) in which every
response must match the schema's definition for its operation and status; bad tokens 401, bad
input 400 with the web's messages, never an HTML error page."""
from __future__ import annotations

import html
import re
import time
import uuid

import jsonschema
import pytest
import requests

from tests.integration.stack import Client

PASSWORD = "a-Long-passw0rd!"
CONTROLS = {"mode": "perturb", "delta": [0.5, -1, 0, 0.25, 2],
            "sections": [{"from_bar": 3, "to_bar": 4, "delta": [2, 0, -2, 0, 1]}],
            "base_tempo_bpm": 84, "expressiveness": 1.4, "variations": 2}


def _json_schema(node):
    """OpenAPI 3.0 schema objects -> JSON Schema (``nullable`` becomes a null alternative)."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


class SchemaChecker:
    """Checks responses against the schema served by the site; counts what it checked."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.components = _json_schema(spec["components"])
        self.routes = []
        for path, item in spec["paths"].items():
            rx = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            self.routes.append((rx, path, item))
        self.checked: list[tuple[str, str, int]] = []

    def operation(self, method: str, url: str) -> tuple[str, dict]:
        path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
        for rx, template, item in self.routes:
            if rx.match(path) and method.lower() in item:
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path} is not in the schema")

    def check(self, resp: requests.Response) -> requests.Response:
        method = resp.request.method
        template, op = self.operation(method, resp.request.url)
        code = str(resp.status_code)
        assert code in op["responses"], (
            f"{method} {template} answered {code}, undocumented (documented: "
            f"{sorted(op['responses'])}): {resp.text[:300]}")
        content = op["responses"][code].get("content")
        if content is None:
            assert not resp.content, f"{method} {template} {code}: body where none is documented"
        else:
            ctype = resp.headers.get("Content-Type", "").split(";")[0]
            assert ctype in content, f"{method} {template} {code}: {ctype} not in {list(content)}"
            if ctype == "application/json":
                schema = {**_json_schema(content["application/json"]["schema"]),
                          "components": self.components}
                jsonschema.Draft202012Validator(
                    schema, format_checker=jsonschema.FormatChecker()).validate(resp.json())
        self.checked.append((method, template, resp.status_code))
        return resp


class Api:
    """A script's HTTP session: a token (or none), every response checked against the schema."""

    def __init__(self, stack, checker: SchemaChecker, token: str | None = None):
        self.base, self.checker = stack.base_url, checker
        self.s = requests.Session()
        if token:
            self.s.headers["Authorization"] = f"Token {token}"

    def __getattr__(self, method):
        def call(path, **kw):
            return self.checker.check(self.s.request(method.upper(), self.base + path,
                                                     timeout=120, **kw))
        return call

    def wait_done(self, job: dict, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.get(job["status_url"]).json()
            if state["state"] not in ("queued", "running") or time.monotonic() > deadline:
                return state
            time.sleep(0.3)


@pytest.fixture
def checker(stack) -> SchemaChecker:
    r = requests.get(stack.base_url + "/api/schema/", timeout=60,
                     headers={"Accept": "application/vnd.oai.openapi+json"})
    assert r.status_code == 200, r.text[:500]
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    return SchemaChecker(spec)


def _signed_up(stack) -> tuple[Client, str]:
    name = f"api{uuid.uuid4().hex[:10]}"
    return Client(stack).signup(name, PASSWORD), name


def test_scripted_session_matches_the_schema(stack, checker, medium_score, bad_inputs):
    web, name = _signed_up(stack)
    anon = Api(stack, checker)
    r = anon.post("/api/v1/token/", json={"username": name, "password": "wrong"})
    assert r.status_code == 400 and r.json()["error"] == "wrong username or password"
    token = anon.post("/api/v1/token/", json={"username": name, "password": PASSWORD}).json()["token"]
    api = Api(stack, checker, token)

    # Upload: the web upload's checks and messages.
    for bad in ("empty.musicxml", "random.mid", "random.mxl"):
        web_page = web.upload(bad_inputs[bad]).text
        web_message = html.unescape(re.search(r'<p class="error" role="alert">([^<]+)</p>',
                                              web_page).group(1))
        with open(bad_inputs[bad], "rb") as f:
            r = api.post("/api/v1/scores/", files={"file": (bad, f)})
        assert r.status_code == 400 and r.json()["error"] == web_message, (bad, r.text)
    r = api.post("/api/v1/scores/", files={"title": (None, "no file")})
    assert r.status_code == 400 and r.json()["error"] == "file: No file was submitted."
    r = api.post("/api/v1/scores/", json={"title": "no file"})
    assert r.status_code == 415 and "Unsupported media type" in r.json()["error"]
    with open(medium_score, "rb") as f:
        r = api.post("/api/v1/scores/", files={"file": ("medium.mid", f)}, data={"title": "Etude"})
    assert r.status_code == 201, r.text
    score = r.json()
    assert score["title"] == "Etude" and score["n_notes"] == 300 and not score["is_demo"]
    sid = score["score_id"]
    assert sid in [s["score_id"] for s in api.get("/api/v1/scores/").json()]
    assert api.get(f"/api/v1/scores/{sid}/").json() == score

    # Render with every control; poll the job to done.
    for body, message in [({"seed": "x"}, "seed: A valid integer is required."),
                          ({"controls": {"loudness": 2}}, "unknown control(s): loudness"),
                          ({"controls": {"delta": [1, 2]}}, "delta must be a list of 5 numbers"),
                          ({"controls": {"mode": "perturb", "sections": [
                              {"from_bar": 90, "to_bar": 95, "delta": [0] * 5}]}}, "section 1")]:
        r = api.post(f"/api/v1/scores/{sid}/render/", json=body)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
    r = api.post(f"/api/v1/scores/{sid}/render/", data="{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON parse error" in r.json()["error"]
    job = api.post(f"/api/v1/scores/{sid}/render/", json={"seed": 17, "controls": CONTROLS})
    assert job.status_code == 201, job.text
    job = job.json()
    assert job["ws_url"] == f"/ws/jobs/{job['job_id']}/" and job["seed"] == 17
    done = api.wait_done(job)
    assert done["state"] == "done", done
    stored = {k: v for k, v in CONTROLS.items()}
    assert done["controls"] == stored and len(done["performance_ids"]) == 2
    r = api.post(f"/api/v1/jobs/{job['job_id']}/cancel/")
    assert r.status_code == 409 and "already ended" in r.json()["error"]

    # Performances: per score, detail with notes, downloads.
    perfs = api.get(f"/api/v1/scores/{sid}/performances/").json()
    assert sorted(p["performance_id"] for p in perfs) == sorted(done["performance_ids"])
    assert [p["variation"] for p in perfs] == [0, 1] and all(p["controls"] == stored for p in perfs)
    perf = api.get(perfs[0]["url"]).json()
    assert len(perf["notes"]) == 300 and perf["score_id"] == sid and perf["seed"] == 17
    mid = api.get(perf["downloads"]["mid"])
    assert mid.status_code == 200 and mid.content[:4] == b"MThd"
    csv = api.get(perf["downloads"]["csv"])
    assert csv.status_code == 200 and csv.text.count("\n") >= 300

    # Presets: create (from the take, and from controls), list, rename, share, apply, delete.
    r = api.post("/api/v1/presets/", json={"name": "Take one", "performance_id": perf["performance_id"]})
    assert r.status_code == 201, r.text
    preset = r.json()
    assert preset["controls"] == stored and preset["seed"] == 17 and preset["share_url"] is None
    r = api.post("/api/v1/presets/", json={"name": "Plain", "seed": 3,
                                           "controls": {"expressiveness": 9}})
    assert r.status_code == 400 and "expressiveness must be between 0 and 3" in r.json()["error"]
    r = api.post("/api/v1/presets/", json={"name": "", "controls": {}})
    assert r.status_code == 400 and r.json()["fields"]["name"]
    plain = api.post("/api/v1/presets/", json={"name": "Plain", "seed": 3,
                                               "controls": {"expressiveness": 0.5}}).json()
    assert {p["id"] for p in api.get("/api/v1/presets/").json()} == {preset["id"], plain["id"]}
    r = api.patch(preset["api_url"], json={"name": "Take one, renamed", "description": "d"})
    assert r.json()["name"] == "Take one, renamed" and r.json()["description"] == "d"
    shared = api.post(f"/api/v1/presets/{preset['id']}/share/").json()
    token_path = shared["share_url"]
    share_token = token_path.strip("/").split("/")[-1]
    assert share_token in [p["api_url"].strip("/").split("/")[-1]
                           for p in anon.get("/api/v1/shared-presets/").json()]
    public = anon.get(f"/api/v1/shared-presets/{share_token}/").json()
    assert "id" not in public and public["name"] == "Take one, renamed"
    applied = api.post(f"/api/v1/presets/{plain['id']}/apply/", json={"score_id": sid})
    assert applied.status_code == 201, applied.text
    assert api.wait_done(applied.json())["controls"] == {"expressiveness": 0.5}
    # a variation of the preset: another seed, two takes, other controls; bad controls refused
    r = api.post(f"/api/v1/presets/{plain['id']}/apply/", json={"score_id": sid, "seed": 5, "variations": 2})
    assert r.status_code == 201, r.text
    assert r.json()["seed"] == 5
    assert api.wait_done(r.json())["controls"] == {"expressiveness": 0.5, "variations": 2}
    assert len(api.get(f"/api/v1/scores/{sid}/performances/").json()) >= 3
    r = api.post(f"/api/v1/presets/{plain['id']}/apply/",
                 json={"score_id": sid, "controls": {"expressiveness": 7}})
    assert r.status_code == 400 and "expressiveness" in r.json()["error"]
    r = api.post(f"/api/v1/presets/{plain['id']}/apply/",
                 json={"score_id": sid, "controls": {"reference_id": str(uuid.uuid4())}})
    assert r.status_code == 400 and "keeps its own reference" in r.json()["error"]

    # Someone else: token auth too; my private things are 404, the shared preset applies.
    _, other_name = _signed_up(stack)
    other = Api(stack, checker, anon.post("/api/v1/token/", json={
        "username": other_name, "password": PASSWORD}).json()["token"])
    for path in (f"/api/v1/scores/{sid}/", preset["api_url"], perfs[0]["url"],
                 f"/api/v1/jobs/{job['job_id']}/", perf["downloads"]["mid"]):
        assert other.get(path).status_code == 404, path
    assert other.get(f"/api/v1/scores/{sid}/performances/").status_code == 404
    r = other.post(f"/api/v1/shared-presets/{share_token}/apply/", json={"score_id": sid})
    assert r.status_code == 404 and r.json() == {"error": "no such score"}
    demo_or_none = [s for s in other.get("/api/v1/scores/").json() if s["is_demo"]]
    if demo_or_none:
        r = other.post(f"/api/v1/shared-presets/{share_token}/apply/",
                       json={"score_id": demo_or_none[0]["score_id"]})
        assert r.status_code == 201 and r.json()["seed"] == 17
        other.post(f"/api/v1/jobs/{r.json()['job_id']}/cancel/")
    r = other.post(f"/api/v1/scores/{sid}/render/", json={"controls": {"reference_id": str(uuid.uuid4())}})
    assert r.status_code == 404  # the score is not theirs (checked before anything else)

    unshared = api.post(f"/api/v1/presets/{preset['id']}/unshare/").json()
    assert unshared["is_shared"] is False
    assert anon.get(f"/api/v1/shared-presets/{share_token}/").status_code == 404
    assert api.delete(preset["api_url"]).status_code == 204
    assert api.get(preset["api_url"]).status_code == 404
    assert api.delete(preset["api_url"]).status_code == 404

    checked = {(m, t) for m, t, _ in checker.checked}
    documented = {(m.upper(), p) for p, item in checker.spec["paths"].items() for m in item
                  if m in ("get", "post", "patch", "delete", "put")}
    print(f"{len(checker.checked)} responses checked, {len(checked)} of {len(documented)} operations")
    assert documented - checked == set(), f"operations never exercised: {documented - checked}"


def test_tokens_and_anonymous_access(stack, checker):
    web, name = _signed_up(stack)
    anon = Api(stack, checker)
    assert anon.get("/api/v1/scores/").status_code == 200  # demos are public
    assert anon.get("/api/v1/shared-presets/").status_code == 200
    for method, path in [("get", "/api/v1/presets/"), ("post", "/api/v1/presets/"),
                         ("post", "/api/v1/scores/"), ("post", f"/api/v1/scores/{uuid.uuid4()}/render/"),
                         ("post", f"/api/v1/jobs/{uuid.uuid4()}/cancel/")]:
        r = getattr(anon, method)(path)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"] == "Authentication credentials were not provided."
        assert r.headers["WWW-Authenticate"] == "Token"
    # jobs belong to a user or to an anonymous browser session: a cookie-less caller has none
    r = anon.get(f"/api/v1/jobs/{uuid.uuid4()}/")
    assert r.status_code == 404 and r.json() == {"error": "no such job"}
    for path in ("/api/v1/nothing/", "/api/v1/scores/not-a-uuid/"):
        r = requests.get(stack.base_url + path, timeout=60)
        assert r.status_code == 404 and "no such API endpoint" in r.json()["error"]
    bad = Api(stack, checker, "0" * 40)
    r = bad.get("/api/v1/presets/")
    assert r.status_code == 401 and r.json() == {"error": "Invalid token."}
    # The token page: see it, regenerate it (the old one stops working at once).
    page = web.get("/api/token/").text
    old = re.search(r'class="api-token">([0-9a-f]{40})<', page).group(1)
    assert Api(stack, checker, old).get("/api/v1/presets/").status_code == 200
    r = web.post("/api/token/", data={"csrfmiddlewaretoken": web.csrf})
    new = re.search(r'class="api-token">([0-9a-f]{40})<', r.text).group(1)
    assert new != old
    assert Api(stack, checker, old).get("/api/v1/presets/").status_code == 401
    assert Api(stack, checker, new).get("/api/v1/presets/").status_code == 200
    assert Client(stack).get("/api/token/", allow_redirects=False).status_code == 302  # log in first
    # Session auth (the browser) needs the CSRF token on writes.
    r = web.s.post(web.url("/api/v1/presets/"), json={"name": "x", "controls": {}})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = web.post("/api/v1/presets/", json={"name": "x", "controls": {}})
    assert r.status_code == 201, r.text


def test_docs_page_lists_every_operation_of_the_schema(stack, checker):
    page = requests.get(stack.base_url + "/api/", timeout=60)
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    ops = [op["operationId"] for item in checker.spec["paths"].values()
           for m, op in item.items() if m in ("get", "post", "patch", "delete", "put")]
    assert len(ops) >= 20
    for op in ops:
        assert f'id="{op}"' in page.text, op
