"""Reference performances end to end (real worker, real performance MIDI files of
../shared/data): upload and alignment report, playing it back, rendering in its style, a
performance of another piece refused with nothing stored, and privacy."""
from __future__ import annotations

import csv
import lzma
from pathlib import Path

import pytest

pytestmark = pytest.mark.data
SCORE_WORK = "Bach/Prelude_bwv_885"   # 510 notes, performed whole
OTHER_WORK = "Bach/Fugue_bwv_867"     # another piece: its MIDI must not fit SCORE_WORK


@pytest.fixture(scope="module")
def pieces(shared_data, tmp_path_factory) -> dict:
    """{work: (score .musicxml unpacked, performance .mid)} from split.csv rows with perf_midi."""
    rows = {r["work"]: r for r in csv.DictReader(open(shared_data / "split.csv"))
            if r["perf_midi"]}
    out, tmp = {}, tmp_path_factory.mktemp("refs")
    for work in (SCORE_WORK, OTHER_WORK):
        r = rows[work]
        score = tmp / (work.replace("/", "_") + ".musicxml")
        score.write_bytes(lzma.open(shared_data / r["score_file"]).read())
        out[work] = (score, shared_data / r["perf_midi"])
    return out


def _upload_ref(client, score_id, midi: Path):
    with open(midi, "rb") as f:
        return client.post(f"/scores/{score_id}/references", files={"file": (midi.name, f)})


def test_a_reference_aligns_plays_and_primes_a_render(stack, user, pieces):
    score_path, midi = pieces[SCORE_WORK]
    score = user.upload_ok(score_path)
    r = _upload_ref(user, score, midi)
    assert r.status_code == 201, r.text[:2000]
    ref = r.json()
    rep = ref["report"]
    assert rep["n_score_notes"] == 510 and rep["n_matched"] >= 450
    assert rep["n_missing"] + rep["n_matched"] <= 510 and rep["n_extra"] >= 0
    assert rep["passage_fraction"] > 0.9 and rep["from_bar"] == 1 and rep["to_bar"] > 15
    assert ref["n_matched"] == rep["n_matched"]
    assert [x["reference_id"] for x in user.get(f"/scores/{score}/references").json()] == \
        [ref["reference_id"]]
    played = user.get(ref["notes_url"]).json()["notes"]
    assert len(played) == rep["n_performed_notes"]
    assert sum(n["i"] >= 0 for n in played) == rep["n_matched"]
    assert all(n["onset"] >= 0 and 1 <= n["velocity"] <= 127 for n in played)
    # Render in its style: the worker loads the encoding and primes the model with it.
    controls = {"reference_id": ref["reference_id"]}
    job = user.render(score, seed=4, controls=controls)
    assert job.status_code == 201, job.text
    with user.socket(job.json()["job_id"]) as ws:
        msgs = ws.messages_until_end()
    assert msgs[-1]["type"] == "done", msgs[-1]
    with_ref = [n for m in msgs if m["type"] == "notes" for n in m["notes"]]
    assert sorted(n["i"] for n in with_ref) == list(range(510))
    assert user.get(msgs[-1]["notes_url"]).json()["controls"] == controls
    job = user.render(score, seed=4).json()
    with user.socket(job["job_id"]) as ws:
        plain = [n for m in ws.messages_until_end() if m["type"] == "notes" for n in m["notes"]]
    key = lambda ns: sorted((n["i"], n["onset"], n["velocity"]) for n in ns)  # noqa: E731
    assert key(plain) != key(with_ref), "the reference did not change the render"
    # Private: another user neither sees it nor renders with it.
    other = type(user)(stack).signup("o" + ref["reference_id"][:8])
    assert other.get(ref["notes_url"]).status_code == 404
    own = other.upload_ok(score_path)
    r = other.render(own, seed=1, controls=controls)
    assert r.status_code == 400 and "no such reference" in r.json()["error"]
    assert other.get(f"/scores/{own}/references").json() == []
    assert other.post(f"/references/{ref['reference_id']}/delete").status_code == 404


def test_a_performance_of_another_piece_is_refused_and_nothing_is_stored(stack, user, pieces):
    score = user.upload_ok(pieces[SCORE_WORK][0])
    before_rows = stack.count("webapp_referenceperformance")
    before_files = stack.media_files()
    r = _upload_ref(user, score, pieces[OTHER_WORK][1])
    assert r.status_code == 400, r.text[:1000]
    msg = r.json()["error"]
    assert "does not fit this score" in msg and "performance of this piece" in msg, msg
    r = _upload_ref(user, score, pieces[SCORE_WORK][0])   # a MusicXML file is no performance
    assert r.status_code == 400 and "not a MIDI file" in r.json()["error"]
    r = user.post(f"/scores/{score}/references")
    assert r.status_code == 400 and "choose a MIDI file" in r.json()["error"]
    assert stack.count("webapp_referenceperformance") == before_rows
    assert stack.media_files() == before_files
    assert user.get(f"/scores/{score}/references").json() == []
