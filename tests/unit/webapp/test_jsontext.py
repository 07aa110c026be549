"""JSON text stored as it is by a JSONField (webapp.jsontext), read back decoded."""
from __future__ import annotations

import json

import pytest

from webapp.jsontext import EncodedJSON, EncodedJSONEncoder, json_text
from webapp.models import RenderChunk, RenderJob, Score

pytestmark = pytest.mark.django_db


def _job() -> RenderJob:
    score = Score.objects.create(title="S", original_filename="s.mid", file="scores/s.mid",
                                 parsed="parsed/s.npz", format="midi", n_notes=2, duration_beat=2.0, mei="")
    return RenderJob.objects.create(score=score, seed=1, controls={}, state=RenderJob.State.RUNNING)


def test_encoded_text_is_written_unchanged_and_read_back_decoded():
    notes = [{"i": 0, "onset": 0.1234, "z": [0.5, -1.0]}, {"i": 1, "id": "n\u00e9\"2", "onset": 1e-05}]
    text = json_text(notes)
    job = _job()
    RenderChunk.objects.create(job=job, seq=0, notes=EncodedJSON(text), pedal=EncodedJSON("[]"))
    RenderChunk.objects.create(job=job, seq=1, notes=notes, pedal=[])       # plain values as before
    rows = list(RenderChunk.objects.filter(job=job).order_by("seq").values_list("notes", "pedal"))
    assert rows == [(notes, []), (notes, [])]


def test_the_encoder_passes_encoded_text_and_encodes_the_rest():
    assert json.dumps(EncodedJSON('[1,{"a":2}]'), cls=EncodedJSONEncoder) == '[1,{"a":2}]'
    assert json.dumps({"a": "x"}, cls=EncodedJSONEncoder) == '{"a": "x"}'
    assert json.dumps("plain str", cls=EncodedJSONEncoder) == '"plain str"'   # a str stays a JSON string
