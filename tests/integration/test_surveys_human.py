"""The MOS test's oracle: a human performance MIDI uploaded for a piece is aligned to the score
on the worker (render.align); one of another piece is refused with the reason, and the survey
cannot be prepared until it is replaced; a fitting one gives a human stimulus of the same passage
as the other conditions (nASAP: Bach, Fugue BWV 867, performance HuNY01M)."""
from __future__ import annotations

import lzma
import re
import time

import pytest

from tests.integration.test_surveys import action, create_survey, make_staff

SCORE = "nasap/Bach/Fugue/bwv_867/xml_score.musicxml.xz"
RIGHT = "nasap/Bach/Fugue/bwv_867/HuNY01M.mid"
WRONG = "nasap/Bach/Fugue/bwv_863/TongB01M.mid"


@pytest.fixture(scope="session")
def bach_score(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bach") / "bwv867.musicxml"
    out.write_bytes(lzma.open(shared_data / SCORE).read())
    return out


def upload_human(staff, sid: str, piece_url: str, path) -> str:
    """Upload a performance for the piece; wait for the worker's alignment; the piece's row."""
    with open(path, "rb") as f:
        r = staff.post(piece_url, files={"human_midi": (path.name, f)},
                       data={"start_beat": "", "csrfmiddlewaretoken": staff.csrf},
                       allow_redirects=False)
    assert r.status_code == 302
    deadline = time.monotonic() + 240
    while "aligning to the score" in (page := staff.get(f"/surveys/{sid}/").text):
        assert time.monotonic() < deadline, "alignment did not finish"
        time.sleep(1)
    return page


@pytest.mark.timeout(900)
def test_human_performance_is_aligned_and_rendered(stack, shared_data, bach_score):
    staff = make_staff(stack)
    score_id = staff.upload_ok(bach_score)
    sid = create_survey(staff, score_id, conditions=["deadpan", "human"], n_attention=0,
                        segment_sec=4)
    page = staff.get(f"/surveys/{sid}/").text
    piece_url = re.search(r'action="(/surveys/[0-9a-f-]{36}/pieces/\d+/)"', page).group(1)

    # Not a MIDI file: refused at once.
    r = staff.post(piece_url, files={"human_midi": ("x.mid", b"not midi at all")},
                   data={"csrfmiddlewaretoken": staff.csrf})
    assert r.status_code == 200 and "must be a MIDI file" in r.text

    # Another piece: the worker says why, and the survey cannot be prepared.
    page = upload_human(staff, sid, piece_url, shared_data / WRONG)
    assert "does not fit" in page, page[-3000:]
    action(staff, sid, "prepare")
    page = staff.get(f"/surveys/{sid}/").text
    assert "does not fit the score" in page and 'id="survey-state">draft' in page

    page = upload_human(staff, sid, piece_url, shared_data / RIGHT)
    assert "aligned (" in page and "notes matched" in page, page[-3000:]
    assert action(staff, sid, "prepare").status_code == 302
    deadline = time.monotonic() + 300
    while (st := staff.get(f"/surveys/{sid}/status.json").json())["state"] == "rendering":
        assert time.monotonic() < deadline
        time.sleep(1)
    assert st["state"] == "ready", st
    title = re.search(r"<h1>(t[0-9a-f]{8})</h1>", page).group(1)
    rows = stack.sql("SELECT st.condition, st.start_beat, st.end_beat, st.duration_sec, "
                     "st.n_notes FROM surveys_stimulus st JOIN surveys_survey s ON "
                     "st.survey_id = s.id WHERE s.title = %s", title)
    by = {}
    for cond, a, b, dur, n in rows:
        by.setdefault(cond, []).append((a, b, dur, n))
    assert len(by["human"]) == 1 and len(by["deadpan"]) == 1
    (ha, hb, hdur, hn), (da, db, _ddur, dn) = by["human"][0], by["deadpan"][0]
    assert (ha, hb) == (da, db)  # the same passage
    assert hn >= 0.8 * dn and 2.0 < hdur < 15.0, (hn, dn, hdur)
