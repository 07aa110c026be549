"""Listening tests on the live stack (Daphne, a Celery worker, Redis; SQLite and PostgreSQL):
a staff user creates surveys in the pages, the worker renders the stimuli to audio once, people
take the survey over HTTP as the browser does, and every integrity rule holds: tampered, replayed,
out-of-range, unassigned, too-early and after-close answers are refused with a message and
nothing is stored; concurrent submissions lose nothing; results and CSV exports add up."""
from __future__ import annotations

import csv
import io
import re
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.integration.stack import Client

SEGMENT_SEC = 2.0


# --- helpers --------------------------------------------------------------------------------

def make_staff(stack) -> Client:
    name = f"staff{uuid.uuid4().hex[:8]}"
    c = Client(stack).signup(name)
    stack.manage("shell", "-c", "from django.contrib.auth.models import User; "
                 f"User.objects.filter(username='{name}').update(is_staff=True)")
    return c


def create_survey(staff: Client, score_id: str, **fields) -> str:
    data = {"title": f"t{uuid.uuid4().hex[:8]}", "kind": "mos", "scores": [score_id],
            "segment_sec": SEGMENT_SEC, "conditions": ["deadpan", "humanizer", "model"],
            "pairs_per_piece": 1, "n_attention": 1, "completion_code": "", "instructions": "",
            "csrfmiddlewaretoken": staff.csrf, **fields}
    r = staff.post("/surveys/new/", data=data, allow_redirects=False)
    assert r.status_code == 302, r.text[:3000]
    return re.search(r"/surveys/([0-9a-f-]{36})/", r.headers["Location"]).group(1)


def action(staff: Client, survey_id: str, name: str):
    return staff.post(f"/surveys/{survey_id}/{name}/", data={"csrfmiddlewaretoken": staff.csrf},
                      allow_redirects=False)


def prepare(staff: Client, survey_id: str, timeout: float = 300) -> dict:
    """Render the stimuli on the worker; returns the status once they are all rendered."""
    assert action(staff, survey_id, "prepare").status_code == 302
    deadline = time.monotonic() + timeout
    while True:
        st = staff.get(f"/surveys/{survey_id}/status.json").json()
        if st["state"] != "rendering":
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.5)
    assert st["state"] == "ready", st
    return st


def prepare_and_open(staff: Client, survey_id: str, timeout: float = 300) -> dict:
    st = prepare(staff, survey_id, timeout)
    assert action(staff, survey_id, "open").status_code == 302
    return st


def join(stack, survey_id: str, pid: str = "") -> tuple[Client, str]:
    c = Client(stack)
    r = c.get(f"/surveys/s/{survey_id}/" + (f"?pid={pid}" if pid else ""))
    assert r.status_code == 200 and "consent" in r.text, r.text[:2000]
    r = c.post(f"/surveys/s/{survey_id}/consent", allow_redirects=False,
               data={"consent": "on", "external_id": pid, "csrfmiddlewaretoken": c.csrf})
    assert r.status_code == 302, r.text[:2000]
    return c, re.search(r"/surveys/p/([^/]+)/", r.headers["Location"]).group(1)


def state(c: Client, token: str) -> dict:
    r = c.get(f"/surveys/p/{token}/state.json")
    assert r.status_code == 200, r.text[:2000]
    return r.json()


def listen_time(st: dict) -> float:
    return 0.9 * sum(clip["duration"] for clip in st["item"]["clips"]) + 0.05


def right_answers(st: dict, *, fail_attention: bool = False) -> dict:
    """Answers for the current item; attention checks answered as instructed (or not)."""
    m = re.findall(r"(\d) for (?:naturalness|expressiveness)", st["item"]["instruction"])
    if st["kind"] == "mos":
        if m:
            want = {"naturalness": int(m[0]), "expressiveness": int(m[1])}
            if fail_attention:
                want["naturalness"] = 1 + want["naturalness"] % 5
            return want
        return {"naturalness": np.random.randint(1, 6), "expressiveness": np.random.randint(1, 6)}
    if "Attention check" in st["item"]["instruction"]:
        rel = 1 if "“same”" in st["item"]["instruction"] else -1
        return {"relation": -rel if fail_attention else rel, "confidence": 2}
    return {"relation": 1, "confidence": 2}


def post_answer(c: Client, token: str, st: dict, answers: dict, **override):
    body = {"position": st["item"]["position"], "key": st["item"]["key"], "answers": answers,
            **override}
    return c.post(f"/surveys/p/{token}/answer", json=body)


def complete(stack, survey_id: str, *, pid: str = "", fail_attention: bool = False) -> str:
    """Take the whole survey as a participant; returns the completion code."""
    c, token = join(stack, survey_id, pid)
    st = state(c, token)
    while st["item"] is not None:
        time.sleep(listen_time(st))
        r = post_answer(c, token, st, right_answers(st, fail_attention=fail_attention))
        assert r.status_code == 200, r.text
        st = r.json()
    r = c.post(f"/surveys/p/{token}/submit", json={"age_band": "25-34", "training_band": "3-5"})
    assert r.status_code == 200, r.text
    return r.json()["completion_code"]


def n_responses(stack, survey_id: str) -> int:
    return stack.sql("SELECT COUNT(*) FROM surveys_response r JOIN surveys_participant p ON "
                     "r.participant_id = p.id JOIN surveys_survey s ON p.survey_id = s.id "
                     "WHERE s.title = %s", _titles[survey_id])[0][0]


_titles: dict[str, str] = {}
_surveys: dict[tuple[str, str], tuple[Client, str]] = {}


@pytest.fixture(scope="session")
def survey_score(tmp_path_factory) -> Path:
    """A 240-eighth-note melody at 90 bpm (80 s): room for several 2-second passages."""
    from tests.data.corpus import make_midi

    rng = np.random.default_rng(5)
    notes = [(int(60 + rng.integers(-7, 8)), i * 0.5, 0.5, int(rng.integers(50, 90)))
             for i in range(240)]
    return make_midi(tmp_path_factory.mktemp("survey") / "melody.mid", notes)


def _survey(stack, survey_score, kind: str) -> tuple[Client, str]:
    key = (stack.db, kind)
    if key not in _surveys:
        staff = make_staff(stack)
        score_id = staff.upload_ok(survey_score)
        sid = create_survey(staff, score_id, kind=kind, pairs_per_piece=1)
        page = staff.get(f"/surveys/{sid}/").text
        _titles[sid] = re.search(r"<h1>(t[0-9a-f]{8})</h1>", page).group(1)
        prepare_and_open(staff, sid)
        _surveys[key] = (staff, sid)
    return _surveys[key]


@pytest.fixture
def mos(stack, survey_score):
    return _survey(stack, survey_score, "mos")


@pytest.fixture
def ab(stack, survey_score):
    return _survey(stack, survey_score, "ab")


# --- rendering ------------------------------------------------------------------------------

def test_stimuli_rendered_once_on_the_worker(stack, mos):
    import soundfile

    staff, sid = mos
    rows = stack.sql("SELECT st.condition, st.start_beat, st.end_beat, st.audio, st.duration_sec, "
                     "st.state FROM surveys_stimulus st JOIN surveys_survey s ON "
                     "st.survey_id = s.id WHERE s.title = %s", _titles[sid])
    assert sorted(r[0] for r in rows) == ["deadpan", "humanizer", "humanizer", "model"]
    assert all(r[5] == "done" for r in rows)
    span = {(r[1], r[2]) for r in rows if r[0] in ("deadpan", "model")}
    assert len(span) == 1  # every condition of the item plays the same passage
    assert span <= {(r[1], r[2]) for r in rows if r[0] == "humanizer"}
    page = staff.get(f"/surveys/{sid}/").text
    urls = re.findall(r'<audio controls preload="none" src="([^"]+)"', page)
    assert len(urls) == 4  # the preview plays every stimulus
    for cond, _a, _b, audio, dur, _ in rows:
        path = stack.media / audio
        x, sr = soundfile.read(str(path))
        assert sr == 44100 and x.shape[1] == 2
        assert dur == pytest.approx(len(x) / sr, abs=0.01)
        assert 1.5 < dur < SEGMENT_SEC + 4.5, (cond, dur)
        frames = x[: len(x) // 2205 * 2205].reshape(-1, 2205, 2)
        energy = (frames ** 2).mean(axis=(1, 2))
        loud = 10 * np.log10(energy[energy > 1e-7].mean())
        peak = 20 * np.log10(np.abs(x).max())
        # loudness-normalised to -18 dBFS RMS, unless the -1.5 dBFS peak limit holds the gain down
        assert loud == pytest.approx(-18.0, abs=2.0) or (loud < -16 and peak > -2.5), (cond, loud, peak)
        assert peak <= -1.0 + 0.05, (cond, peak)  # under -1 dBFS after Vorbis decoding
        assert np.abs(x[:10]).max() < 0.01 and np.abs(x[-10:]).max() < 0.01  # fades
    # Same bytes for every participant: the clip URL serves the stored file.
    r = Client(stack).get(urls[0])
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/ogg"
    assert r.content[:4] == b"OggS"


# --- integrity ------------------------------------------------------------------------------

def test_bad_answers_are_refused_and_nothing_is_stored(stack, mos):
    _, sid = mos
    c, token = join(stack, sid)
    st = state(c, token)
    before = n_responses(stack, sid)
    good = {"naturalness": 3, "expressiveness": 4}
    r = post_answer(c, token, st, good)
    assert r.status_code == 400 and "play every clip" in r.json()["error"]
    time.sleep(listen_time(st))
    cases = [
        ({"answers": {"naturalness": 6, "expressiveness": 4}}, "outside the scale"),
        ({"answers": {"naturalness": 3}}, "missing"),
        ({"answers": {"naturalness": "3; DROP TABLE", "expressiveness": 1}}, "whole number"),
        ({"key": st["item"]["key"][:-3] + "abc"}, "tampered"),
        ({"key": ""}, "tampered"),
        ({"key": state(*join(stack, sid))["item"]["key"]}, "tampered"),  # someone else's
        ({"position": 1}, "tampered"),
        ({"position": 999}, "not one of yours"),
        ({"position": "0"}, "not one of yours"),
    ]
    for override, msg in cases:
        body = {"answers": good, **override}
        r = post_answer(c, token, st, body.pop("answers"), **body)
        assert r.status_code == 400 and msg in r.json()["error"], (override, r.text)
    r = c.post(f"/surveys/p/{token}/answer", data=b"{not json",
               headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert n_responses(stack, sid) == before
    assert post_answer(c, token, st, good).status_code == 200
    replay = post_answer(c, token, st, good)
    assert replay.status_code == 409 and "already answered" in replay.json()["error"]
    assert n_responses(stack, sid) == before + 2
    r = c.post(f"/surveys/p/{token}/submit", json={"age_band": "25-34", "training_band": "none"})
    assert r.status_code == 400 and "answer every item" in r.json()["error"]
    r = c.post(f"/surveys/p/{token}/submit", json={"age_band": "old", "training_band": "none"})
    assert r.status_code == 400 and "age band" in r.json()["error"]
    # Someone else's token, or none, is not a participant.
    assert Client(stack).get("/surveys/p/nope/state.json").status_code == 404
    r = Client(stack).post("/surveys/p/nope/answer", json={"position": 0})
    assert r.status_code == 404


def test_concurrent_submissions_lose_nothing(stack, mos):
    _, sid = mos
    people = [join(stack, sid) for _ in range(6)]
    states = [state(c, t) for c, t in people]
    time.sleep(max(listen_time(s) for s in states))
    before = n_responses(stack, sid)
    barrier, results = threading.Barrier(8), [None] * 8

    def go(k, c, token, st):
        barrier.wait()
        results[k] = post_answer(c, token, st, {"naturalness": 2, "expressiveness": 5})

    jobs = [(k, c, t, s) for k, ((c, t), s) in enumerate(zip(people, states))]
    # The last participant sends the same answer three times at once: one is stored.
    jobs += [(6, *people[-1], states[-1]), (7, *people[-1], states[-1])]
    threads = [threading.Thread(target=go, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 6 + [409] * 2, [r.text for r in results]
    assert n_responses(stack, sid) == before + 12


def test_full_participants_results_and_exports(stack, mos):
    staff, sid = mos
    codes = [None] * 3

    def run(k):
        codes[k] = complete(stack, sid, fail_attention=(k == 2))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    code = stack.sql("SELECT completion_code FROM surveys_survey WHERE title = %s",
                     _titles[sid])[0][0]
    assert codes == [code] * 3
    page = staff.get(f"/surveys/{sid}/results").text
    m = re.search(r"(\d+) submitted \((\d+) included,\s*<strong>(\d+) excluded", page)
    submitted, included, excluded = map(int, m.groups())
    assert submitted >= 3 and excluded >= 1 and included == submitted - excluded
    assert "Kruskal-Wallis H = " in page and "Mann-Whitney U" in page
    assert page.count("<svg") == 2 and "95% CI" in page
    rows = list(csv.DictReader(io.StringIO(staff.get(f"/surveys/{sid}/responses.csv").text)))
    assert len(rows) == n_responses(stack, sid)
    done = {r["participant"] for r in rows if r["submitted"]}
    assert len(done) == submitted
    assert {r["condition"] for r in rows if r["role"] == "trial"} == {"deadpan", "humanizer",
                                                                      "model"}
    summary = staff.get(f"/surveys/{sid}/summary.csv?correction=bonferroni").text
    assert summary.count("kruskal-wallis H") == 2 and summary.count("mann-whitney U") == 6


def test_external_id_resumes_and_submits_once(stack, mos):
    _, sid = mos
    pid = f"P{uuid.uuid4().hex[:8]}"
    c, token = join(stack, sid, pid)
    st = state(c, token)
    time.sleep(listen_time(st))
    assert post_answer(c, token, st, right_answers(st)).status_code == 200
    # The tab is closed; the link with the same id, in the same browser, resumes.
    r = c.get(f"/surveys/s/{sid}/?pid={pid}", allow_redirects=False)
    assert r.status_code == 302 and token in r.headers["Location"]
    assert state(c, token)["answered"] == 1
    # In another browser the id is refused with a message, never the participant's state.
    other = Client(stack)
    r = other.get(f"/surveys/s/{sid}/?pid={pid}", allow_redirects=False)
    assert r.status_code == 409 and "another browser" in r.text and token not in r.text
    assert other.get(f"/surveys/p/{token}/state.json").status_code == 404
    # The same browser without the id also resumes (its signed browser cookie).
    r = c.get(f"/surveys/s/{sid}/", allow_redirects=False)
    assert r.status_code == 302 and token in r.headers["Location"]
    st = state(c, token)
    while st["item"] is not None:
        time.sleep(listen_time(st))
        st = post_answer(c, token, st, right_answers(st)).json()
    body = {"age_band": "no answer", "training_band": "over 10"}
    assert c.post(f"/surveys/p/{token}/submit", json=body).status_code == 200
    again = c.post(f"/surveys/p/{token}/submit", json=body)
    assert again.status_code == 409 and "already submitted" in again.json()["error"]
    fresh = Client(stack)
    r = fresh.post(f"/surveys/s/{sid}/consent", data={
        "consent": "on", "external_id": pid, "csrfmiddlewaretoken": fresh.csrf})
    assert r.status_code == 400 and "already completed" in r.text
    assert state(c, token)["done"] is True


def test_ab_survey_render_answer_and_statistics(stack, ab):
    staff, sid = ab
    rows = stack.sql("SELECT st.segment, st.sign, st.start_beat, st.end_beat, st.pair, st.delta "
                     "FROM surveys_stimulus st JOIN surveys_survey s ON st.survey_id = s.id "
                     "WHERE s.title = %s", _titles[sid])
    assert len(rows) == 8  # one pair + the practice pair, A1 A2 B1 B2 each
    for pair in {r[4] for r in rows}:
        mine = [r for r in rows if r[4] == pair]
        a = {(r[2], r[3]) for r in mine if r[0] == "A"}
        b = {(r[2], r[3]) for r in mine if r[0] == "B"}
        assert len(a) == len(b) == 1
        (a0, a1), (b0, b1) = a.pop(), b.pop()
        assert b0 >= a1 or a0 >= b1  # non-overlapping passages
        assert sorted(r[1] for r in mine) == [-1, -1, 1, 1]
    c, token = join(stack, sid)
    st = state(c, token)
    assert [clip["label"] for clip in st["item"]["clips"]] == ["A1", "A2", "B first", "B second"]
    assert complete(stack, sid)
    page = staff.get(f"/surveys/{sid}/results").text
    assert "Wilcoxon signed-rank vs 0" in page and "Signed mean confidence" in page
    summary = staff.get(f"/surveys/{sid}/summary.csv").text
    assert "wilcoxon signed-rank vs 0" in summary


def test_staff_only_and_bad_requests_are_not_errors(stack, mos):
    staff, sid = mos
    anon = Client(stack)
    assert anon.get("/surveys/", allow_redirects=False).status_code == 302
    user = Client(stack).signup(f"u{uuid.uuid4().hex[:8]}")
    for path in ("/surveys/", "/surveys/new/", f"/surveys/{sid}/", f"/surveys/{sid}/results"):
        assert user.get(path).status_code == 403, path
    other = make_staff(stack)
    assert other.get(f"/surveys/{sid}/").status_code == 404
    assert other.get(f"/surveys/{sid}/responses.csv").status_code == 404
    assert staff.get(f"/surveys/{uuid.uuid4()}/").status_code == 404
    assert action(staff, sid, "explode").status_code == 404
    r = staff.post("/surveys/new/", data={"title": "x", "kind": "mos", "segment_sec": "abc",
                                          "csrfmiddlewaretoken": staff.csrf})
    assert r.status_code == 400
    r = action(staff, sid, "prepare")  # an open survey cannot be prepared again
    assert r.status_code == 302
    assert "cannot prepare" in staff.get(f"/surveys/{sid}/").text
    assert anon.get(f"/surveys/s/{uuid.uuid4()}/").status_code == 404
    assert anon.get(f"/surveys/clips/{uuid.uuid4()}.ogg").status_code == 404


def test_closed_survey_takes_nothing(stack, mos):
    staff, sid = mos
    c, token = join(stack, sid)
    st = state(c, token)
    time.sleep(listen_time(st))
    before = n_responses(stack, sid)
    assert action(staff, sid, "close").status_code == 302
    try:
        assert not state(c, token)["accepting"]
        r = post_answer(c, token, st, {"naturalness": 3, "expressiveness": 3})
        assert r.status_code == 409 and "closed" in r.json()["error"]
        r = c.post(f"/surveys/p/{token}/submit", json={"age_band": "65+", "training_band": "none"})
        assert r.status_code == 409
        assert Client(stack).get(f"/surveys/s/{sid}/").status_code == 409
        fresh = Client(stack)
        r = fresh.post(f"/surveys/s/{sid}/consent", data={"consent": "on",
                                                          "csrfmiddlewaretoken": fresh.csrf})
        assert r.status_code == 400 and "not open" in r.text
        assert n_responses(stack, sid) == before
    finally:
        assert action(staff, sid, "open").status_code == 302


# --- the researcher's own tries, deleting ---------------------------------------------------

def _participant_counts(page: str) -> tuple[int, ...]:
    m = re.search(r"(\d+) submitted \((\d+) included,\s*<strong>(\d+) excluded", page)
    return tuple(map(int, m.groups()))


def test_a_researchers_try_is_not_counted(stack, mos):
    staff, sid = mos
    before_page = staff.get(f"/surveys/{sid}/results").text
    before_csv = staff.get(f"/surveys/{sid}/responses.csv").text
    r = staff.post(f"/surveys/{sid}/try/", data={"csrfmiddlewaretoken": staff.csrf},
                   allow_redirects=False)
    assert r.status_code == 302, r.text[:2000]
    token = re.search(r"/surveys/p/([^/]+)/", r.headers["Location"]).group(1)
    assert "your answers are not counted" in staff.get(f"/surveys/p/{token}/").text.lower()
    st = state(staff, token)
    while st["item"] is not None:  # the same rules as for participants: listen, then answer
        time.sleep(listen_time(st))
        r = post_answer(staff, token, st, right_answers(st))
        assert r.status_code == 200, r.text
        st = r.json()
    r = staff.post(f"/surveys/p/{token}/submit", json={"age_band": "25-34", "training_band": "none"})
    assert r.status_code == 200 and r.json()["done"]
    assert _participant_counts(staff.get(f"/surveys/{sid}/results").text) == \
        _participant_counts(before_page)
    rows = list(csv.DictReader(io.StringIO(staff.get(f"/surveys/{sid}/responses.csv").text)))
    assert len(rows) == len(list(csv.DictReader(io.StringIO(before_csv))))
    assert stack.sql("SELECT COUNT(*) FROM surveys_participant WHERE token = %s AND preview",
                     token)[0][0] == 1
    # an open survey is not deleted (people may be mid-way)
    r = staff.post(f"/surveys/{sid}/delete/", data={"csrfmiddlewaretoken": staff.csrf})
    assert r.status_code == 200 and "close it before deleting" in r.text
    assert stack.sql("SELECT COUNT(*) FROM surveys_survey WHERE title = %s", _titles[sid])[0][0] == 1


def test_try_before_opening_then_edit_and_delete(stack, survey_score):
    staff = make_staff(stack)
    score_id = staff.upload_ok(survey_score)
    sid = create_survey(staff, score_id, conditions=["deadpan", "model"], n_attention=0)
    title = re.search(r"<h1>(t[0-9a-f]{8})</h1>", staff.get(f"/surveys/{sid}/").text).group(1)
    r = staff.post(f"/surveys/{sid}/try/", data={"csrfmiddlewaretoken": staff.csrf})
    assert "cannot try the survey" in r.text  # nothing rendered yet
    prepare(staff, sid)
    assert 'id="try"' in staff.get(f"/surveys/{sid}/").text
    r = staff.post(f"/surveys/{sid}/try/", data={"csrfmiddlewaretoken": staff.csrf},
                   allow_redirects=False)
    token = re.search(r"/surveys/p/([^/]+)/", r.headers["Location"]).group(1)
    st = state(staff, token)
    assert st["state"] == "ready" and st["accepting"] and st["preview"]
    time.sleep(listen_time(st))
    assert post_answer(staff, token, st, right_answers(st)).status_code == 200
    assert Client(stack).get(f"/surveys/s/{sid}/").status_code == 409  # still not open to people
    # the try does not hold the stimuli: back to draft discards it with them
    assert action(staff, sid, "edit").status_code == 302
    assert stack.sql("SELECT COUNT(*) FROM surveys_participant WHERE token = %s", token)[0][0] == 0
    assert staff.get(f"/surveys/p/{token}/state.json").status_code == 404
    prepare(staff, sid)
    clips = [stack.media / a for (a,) in stack.sql(
        "SELECT st.audio FROM surveys_stimulus st JOIN surveys_survey s ON st.survey_id = s.id "
        "WHERE s.title = %s", title)]
    assert clips and all(c.is_file() for c in clips)
    other = make_staff(stack)
    assert other.post(f"/surveys/{sid}/delete/",
                      data={"csrfmiddlewaretoken": other.csrf}).status_code == 404
    r = staff.post(f"/surveys/{sid}/delete/", data={"csrfmiddlewaretoken": staff.csrf},
                   allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].endswith("/surveys/")
    assert staff.get(f"/surveys/{sid}/").status_code == 404
    assert not any(c.exists() for c in clips), "the clips' files go with the survey"
    # the score is no longer held by a listening test: its owner can delete it
    r = staff.post(f"/scores/{score_id}/delete", data={"csrfmiddlewaretoken": staff.csrf},
                   allow_redirects=False)
    assert r.status_code == 302 and score_id not in r.headers["Location"], r.headers
    assert staff.get(f"/scores/{score_id}/").status_code == 404
