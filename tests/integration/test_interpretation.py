"""Interpretation controls end to end (real worker): every control reaches the renderer and is
stored, the same controls and seed reproduce a take, Delta (global and per section) changes it,
several takes render in one job, and bad values are refused with a message."""
from __future__ import annotations

import pytest


def _render_done(client, score_id, seed=None, **body) -> tuple[dict, list[dict]]:
    """Render and follow the job to 'done'; (done message, streamed notes)."""
    r = client.render(score_id, seed=seed, **body)
    assert r.status_code == 201, r.text
    with client.socket(r.json()["job_id"]) as ws:
        msgs = ws.messages_until_end()
    assert msgs[-1]["type"] == "done", msgs[-1]
    notes = [n for m in msgs if m["type"] == "notes" for n in m["notes"]]
    return msgs[-1], notes


def _key(notes):
    return [(n["i"], n["v"], n["onset"], n["duration"], n["velocity"])
            for n in sorted(notes, key=lambda n: (n["v"], n["i"]))]


@pytest.fixture
def medium(user, medium_score):
    """(client, score id) of a 300-note score of about 19 bars."""
    return user, user.upload_ok(medium_score)


CONTROLS = {"mode": "perturb", "delta": [0.5, -1, 0, 0.25, 2],
            "sections": [{"from_bar": 3, "to_bar": 4, "delta": [2, 0, -2, 0, 1]}],
            "base_tempo_bpm": 84, "expressiveness": 1.4, "temperature": 0.7}


def test_every_control_is_stored_and_the_same_seed_reproduces(stack, medium):
    client, score = medium
    done, notes = _render_done(client, score, seed=11, controls=CONTROLS)
    stored = client.get(done["notes_url"]).json()
    assert stored["controls"] == CONTROLS and stored["seed"] == 11
    assert stored["notes"] == notes and all("b" in n and len(n["z"]) == 5 for n in notes)
    takes = client.get(f"/scores/{score}/takes.json").json()
    assert takes[-1]["controls"] == CONTROLS and takes[-1]["performance_id"] == done["performance_id"]
    job = client.get(f"/api/v1/jobs/{takes[-1]['job_id']}/").json()
    assert job["controls"] == CONTROLS
    again, notes2 = _render_done(client, score, seed=11, controls=CONTROLS)
    assert again["performance_id"] != done["performance_id"]
    assert _key(notes2) == _key(notes), "same controls and seed must give the same notes"
    other = dict(CONTROLS, delta=[-2, 1, 0, 0, -2])
    _, notes3 = _render_done(client, score, seed=11, controls=other)
    assert _key(notes3) != _key(notes), "another Delta must change the take"


def test_base_tempo_expressiveness_and_fixed_z_reach_the_renderer(stack, medium):
    client, score = medium
    _, slow = _render_done(client, score, seed=3, controls={"base_tempo_bpm": 50,
                                                            "expressiveness": 0})
    _, fast = _render_done(client, score, seed=3, controls={"base_tempo_bpm": 150,
                                                            "expressiveness": 0})
    # Expressiveness 0 is deadpan: the written tempo exactly, one velocity (no dynamics marks).
    assert {n["tempo"] for n in slow} == {50.0} and {n["tempo"] for n in fast} == {150.0}
    assert len({n["velocity"] for n in slow}) == 1
    end = max(n["onset"] for n in slow) / max(n["onset"] for n in fast)
    assert 2.5 < end < 3.5, end
    # Mode fixed: every note is rendered from the given z.
    z = [1.0, -1.0, 0.5, 0.0, 2.0]
    done, fixed = _render_done(client, score, seed=3, controls={"mode": "fixed", "z": z})
    assert all(n["z"] == z for n in fixed)
    assert client.get(done["notes_url"]).json()["controls"] == {"mode": "fixed", "z": z}
    # Randomness 0 (the default) takes the model's expected notes: with z fixed, the seed no
    # longer matters; randomness 1 samples them.
    greedy = {"mode": "fixed", "z": z, "temperature": 0}
    _, g1 = _render_done(client, score, seed=4, controls=greedy)
    _, g2 = _render_done(client, score, seed=5, controls=greedy)
    _, noisy = _render_done(client, score, seed=4, controls=dict(greedy, temperature=1.0))
    assert _key(g1) == _key(g2) == _key(fixed) and _key(g1) != _key(noisy)


def test_a_section_delta_changes_the_take_only_from_its_passage_on(stack, medium):
    client, score = medium
    bars = client.get(f"/scores/{score}/bars.json").json()
    assert bars["n_bars"] >= 10
    plain = {"mode": "perturb", "delta": [0, 0, 0, 0, 0]}
    section = dict(plain, sections=[{"from_bar": 6, "to_bar": 8, "delta": [3, -3, 3, -3, 3]}])
    _, a = _render_done(client, score, seed=21, controls=plain)
    _, b = _render_done(client, score, seed=21, controls=section)
    bar_of = {n["i"]: bars["bars"][n["id"].split("-")[0]] for n in a}
    za = {n["i"]: n["z"] for n in a}
    zb = {n["i"]: n["z"] for n in b}
    before = [i for i in za if bar_of[i] < 6]
    inside = [i for i in za if 6 <= bar_of[i] <= 8]
    assert before and inside
    assert [za[i] for i in before] == [zb[i] for i in before], "notes before the passage changed"
    ka = {n["i"]: (n["onset"], n["velocity"], n["duration"]) for n in a}
    kb = {n["i"]: (n["onset"], n["velocity"], n["duration"]) for n in b}
    assert [ka[i] for i in before] == [kb[i] for i in before]
    assert sum(za[i] != zb[i] for i in inside) == len(inside), "z must follow the section's Delta"
    assert sum(ka[i] != kb[i] for i in inside) > len(inside) // 4, "the passage sounds the same"


def test_several_takes_render_in_one_job(stack, medium):
    client, score = medium
    done, notes = _render_done(client, score, seed=5, controls={"variations": 3})
    perfs = done["performances"]
    assert [p["variation"] for p in perfs] == [0, 1, 2]
    assert done["performance_id"] == perfs[0]["performance_id"]
    assert sorted({n["v"] for n in notes}) == [0, 1, 2]
    per_take = []
    for p in perfs:
        take = client.get(p["notes_url"]).json()
        assert take["variation"] == p["variation"]
        assert sorted(n["i"] for n in take["notes"]) == list(range(300))
        assert {n["v"] for n in take["notes"]} == {p["variation"]}
        per_take.append(_key([dict(n, v=0) for n in take["notes"]]))
    assert per_take[0] != per_take[1] != per_take[2], "the takes of one job must differ"
    takes = client.get(f"/scores/{score}/takes.json").json()
    mine = [t for t in takes if t["job_id"] == takes[-1]["job_id"]]
    assert [t["performance_id"] for t in mine] == [p["performance_id"] for p in perfs]
    assert all(t["variations"] == 3 for t in mine)
    assert client.get(perfs[2]["downloads"]["mid"]).status_code == 200


BAD = [
    ({"delta": [1, 2, 3]}, "delta must be a list of 5"),
    ({"delta": [0, 0, 0, 0, 99]}, "delta[4] must be between"),
    ({"delta": ["a", 0, 0, 0, 0]}, "delta[0] must be a number"),
    ({"mode": "wild"}, "mode must be one of"),
    ({"mode": "prior", "delta": [0, 0, 0, 0, 1]}, "steer the 'perturb' mode"),
    ({"base_tempo_bpm": 5}, "base tempo (bpm) must be between 20 and 400"),
    ({"base_tempo_bpm": "fast"}, "base tempo (bpm) must be a number"),
    ({"expressiveness": 7}, "expressiveness must be between 0 and 3"),
    ({"variations": 0}, "takes (variations) must be a whole number"),
    ({"variations": 1000}, "takes (variations) must be a whole number"),
    ({"sections": [{"from_bar": 5, "to_bar": 2, "delta": [0] * 5}]}, "is before from_bar"),
    ({"sections": [{"from_bar": 1, "to_bar": 9999, "delta": [0] * 5}]}, "to_bar must be"),
    ({"sections": "bars 1-4"}, "sections must be a list"),
    ({"z": [0] * 5}, "z is the fixed interpretation"),
    ({"colour": "blue"}, "unknown control(s): colour"),
    ({"reference_id": "not-an-id"}, "no such reference performance"),
    ({"reference_id": "00000000-0000-0000-0000-000000000000"}, "no such reference performance"),
]


def test_bad_controls_are_refused_with_a_message(stack, medium):
    client, score = medium
    before = stack.count("webapp_renderjob")
    for controls, message in BAD:
        r = client.render(score, seed=1, controls=controls)
        assert r.status_code == 400, (controls, r.status_code, r.text[:300])
        assert message in r.json()["error"], (controls, r.json())
    r = client.render(score, seed="x")
    assert r.status_code == 400 and "seed" in r.json()["error"]
    r = client.render(score, controls=[1, 2])
    assert r.status_code == 400 and r.json()["error"] == "controls: must be a JSON object"
    assert stack.count("webapp_renderjob") == before, "a refused render left a job behind"
