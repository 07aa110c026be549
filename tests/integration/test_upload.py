"""Uploads through the live site: every format is read and engraved, every bad file refused."""
from __future__ import annotations

import re

import pytest

from tests.data.corpus import BAD_INPUTS

GOOD = ["musicxml", "mxl", "mxl_no_container", "midi", "midi_named_xml", "midi_with_drums",
        "mei", "kern"]


@pytest.mark.parametrize("kind", GOOD)
def test_good_upload_is_parsed_engraved_and_mapped(stack, user, good_inputs, kind):
    score_id = user.upload_ok(good_inputs[kind])
    page = user.get(f"/scores/{score_id}/")
    assert page.status_code == 200
    assert f'data-score-id="{score_id}"' in page.text
    for attr in ("data-mei-url", "data-notemap-url", "data-render-url", "data-takes-url",
                 "data-csrf"):
        assert attr in page.text
    mei = user.get(f"/scores/{score_id}/mei")
    assert mei.status_code == 200 and "<mei" in mei.text
    notemap = user.get(f"/scores/{score_id}/notemap.json").json()
    n_notes = stack.sql("SELECT n_notes FROM webapp_score WHERE id = %s",
                        score_id.replace("-", "") if stack.db == "sqlite" else score_id)[0][0]
    assert n_notes >= 7
    # Every score note has an engraved element, and every element id is in the MEI served.
    assert len(notemap) == len(set(notemap.values())) > 0
    mei_ids = set(re.findall(r'xml:id="([^"]+)"', mei.text))
    assert set(notemap.values()) <= mei_ids
    if kind == "midi_with_drums":
        assert "drum notes" in page.text


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_upload_is_refused_with_its_reason_and_leaves_nothing(stack, user, bad_inputs, name):
    before = (stack.count("webapp_score"), stack.media_files())
    r = user.upload(bad_inputs[name])
    assert r.status_code == 400
    expected = BAD_INPUTS[name].replace("50000", "20000")  # this stack's note limit
    assert expected in r.text, r.text[-3000:]
    assert name in r.text  # the message names the file
    assert (stack.count("webapp_score"), stack.media_files()) == before


@pytest.mark.parametrize("size", [3_010_000, 5_000_000])
def test_too_big_upload_is_refused(stack, user, tmp_path, size):
    big = tmp_path / "huge.musicxml"  # just over the limit (checked after upload), and far over
    big.write_bytes(b"<?xml version='1.0'?><score-partwise>" + b" " * size)
    before = stack.count("webapp_score"), stack.media_files()
    r = user.upload(big)
    assert r.status_code == 400
    assert "over the limit of 3 MB" in r.text
    assert (stack.count("webapp_score"), stack.media_files()) == before


def test_anonymous_cannot_upload(stack, client, good_inputs):
    r = client.upload(good_inputs["musicxml"])
    assert r.status_code == 302 and "/accounts/login/" in r.headers["Location"]
    assert "two_bars" not in client.get("/").text


def test_upload_without_csrf_token_is_forbidden(stack, user, good_inputs):
    with open(good_inputs["musicxml"], "rb") as f:
        r = user.s.post(user.url("/upload/"), files={"file": ("x.musicxml", f)},
                        allow_redirects=False)
    assert r.status_code == 403
