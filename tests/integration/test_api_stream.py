"""API clients stream their render over the job WebSocket with their token (webapp.jobs.ws_auth): a
script renders through the API, connects to the returned ws_url with ``Authorization: Token`` (no
Origin header, as scripts send none) or ``?token=``, and receives the state, every chunk in order
and the done message; another user's token, a bad token, no token and a foreign Origin are
refused with nothing relayed."""
from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.integration.stack import Client

PASSWORD = "a-Long-passw0rd!"


def _token(stack) -> tuple[Client, str]:
    """A signed-up web user (cookies) and their API token."""
    name = f"ws{uuid.uuid4().hex[:10]}"
    web = Client(stack).signup(name, PASSWORD)
    r = requests.post(stack.base_url + "/api/v1/token/", timeout=60,
                      json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return web, r.json()["token"]


def _messages(ws, timeout: float = 180) -> list[dict]:
    """Messages up to and including 'done' (or a failed/cancelled state)."""
    out, deadline = [], time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        out.append(msg)
        if msg["type"] == "done" or (msg["type"] == "state"
                                     and msg["state"] in ("failed", "cancelled")):
            return out


def _refused_with(url: str, code: int, **kw) -> None:
    """The socket opens, then closes with ``code`` before any message."""
    with connect(url, open_timeout=20, **kw) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            msg = ws.recv(timeout=20)
            pytest.fail(f"relayed {msg[:200]!r}")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code, closed.value


def test_a_token_streams_its_own_render(stack, medium_score):
    web, token = _token(stack)
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    with open(medium_score, "rb") as f:
        r = api.post(stack.base_url + "/api/v1/scores/", files={"file": ("medium.mid", f)},
                     timeout=300)
    assert r.status_code == 201, r.text
    score = r.json()
    r = api.post(stack.base_url + f"/api/v1/scores/{score['score_id']}/render/", timeout=60,
                 json={"seed": 23, "controls": {"mode": "perturb", "delta": [1, 0, 0, 0, -1],
                                                "variations": 2}})
    assert r.status_code == 201, r.text
    job = r.json()
    url = f"ws://127.0.0.1:{stack.port}{job['ws_url']}"

    # Live, with the header and no Origin (what a script sends).
    with connect(url, additional_headers={"Authorization": f"Token {token}"},
                 open_timeout=20) as ws:
        live = _messages(ws)
    assert live[0]["type"] == "state", live[0]
    chunks = [m for m in live if m["type"] == "notes"]
    # in order, without gaps (how many: the publisher sends what has piled up as one chunk)
    assert chunks and [m["seq"] for m in chunks] == list(range(len(chunks)))
    notes = [n for m in chunks for n in m["notes"]]
    assert len(notes) == 2 * score["n_notes"] == 600
    assert sorted({n.get("v", 0) for n in notes}) == [0, 1]
    done = live[-1]
    assert done["type"] == "done", done
    polled = api.get(stack.base_url + job["status_url"], timeout=60).json()
    assert polled["state"] == "done"
    assert [p["performance_id"] for p in done["performances"]] == polled["performance_ids"]
    perf = api.get(stack.base_url + f"/api/v1/performances/{done['performance_id']}/",
                   timeout=60).json()
    assert len(perf["notes"]) == done["n_notes"] == 300

    # ?token= for clients that cannot set headers: the finished job is replayed.
    with connect(f"{url}?token={token}", open_timeout=20) as ws:
        replay = _messages(ws)
    assert [m for m in replay if m["type"] == "notes"] == chunks
    assert replay[-1] == done

    # Refused, nothing relayed: another user's token, a bad token (header or query).
    _, other = _token(stack)
    _refused_with(url, 4403, additional_headers={"Authorization": f"Token {other}"})
    _refused_with(url, 4401, additional_headers={"Authorization": "Token " + "0" * 40})
    _refused_with(url, 4401, additional_headers={"Authorization": "Token"})
    _refused_with(f"{url}?token=nope", 4401)
    # A bad token does not fall back on the session cookie sent with it.
    cookie = "; ".join(f"{c.name}={c.value}" for c in web.s.cookies)
    _refused_with(f"{url}?token=nope", 4401, additional_headers={"Cookie": cookie})
    # The browser checks are unchanged: no Origin and no token, or a foreign Origin (even with
    # a good token), are refused at the handshake.
    for kw in ({}, {"additional_headers": {"Cookie": cookie}},
               {"origin": "http://evil.example",
                "additional_headers": {"Authorization": f"Token {token}"}}):
        with pytest.raises(InvalidStatus):
            connect(url, open_timeout=20, **kw)
    # The site's own Origin with a token (a page of the site using the API) streams as well.
    with connect(url, origin=stack.base_url, open_timeout=20,
                 additional_headers={"Authorization": f"Token {token}"}) as ws:
        assert _messages(ws)[-1] == done
