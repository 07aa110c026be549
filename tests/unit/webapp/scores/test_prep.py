"""webapp.scores.prep: parse + engrave once, load the saved arrays back without re-parsing."""
import json
from pathlib import Path

import numpy as np
import pytest

from render.errors import ScoreError
from webapp.scores.prep import load_parsed, prepare

SCORES = Path(__file__).resolve().parents[3] / "data" / "scores"


def test_prepare_writes_arrays_mei_and_a_complete_notemap(tmp_path):
    meta = prepare(SCORES / "two_bars.musicxml", tmp_path, name="two_bars.musicxml",
                   max_notes=1000, max_bytes=10**6)
    assert meta["format"] == "musicxml" and meta["coverage"] == 1.0
    assert json.loads((tmp_path / "meta.json").read_text()) == meta
    score = load_parsed(tmp_path / "parsed.npz")
    assert score.n_notes == meta["n_notes"]
    assert set(meta["notemap"]) == set(np.char.partition(score.notes["id"], "-")[:, 0])
    mei = (tmp_path / "score.mei").read_text()
    assert all(f'xml:id="{v}"' in mei for v in meta["notemap"].values())


def test_prepare_refuses_too_many_notes(tmp_path):
    with pytest.raises(ScoreError, match="over the limit of 3"):
        prepare(SCORES / "two_bars.musicxml", tmp_path, name="x.musicxml", max_notes=3,
                max_bytes=10**6)
