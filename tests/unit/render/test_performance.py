"""Aligned performances: the .npz pair that caches a parsed match file, and load_aligned's errors."""
from __future__ import annotations

import numpy as np
import pytest

from render.errors import PerformanceError
from render.loaders import load_score
from render.performance import (PEDAL_DTYPE, PERF_NOTE_DTYPE, AlignedPerformance, load_aligned, load_aligned_npz,
                                save_aligned_npz)
from tests.data.corpus import TWO_BARS
from tests.unit.render.conftest import MOZART_KV282_1


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Structured or plain arrays equal field by field, NaN equal to NaN, dtypes equal."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.names:
        return all(same(a[f], b[f]) for f in a.dtype.names)
    return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def assert_same_performance(p: AlignedPerformance, q: AlignedPerformance):
    assert same(q.score.notes, p.score.notes)
    assert same(q.score.tempo_marks, p.score.tempo_marks)
    assert same(q.score.dynamics_marks, p.score.dynamics_marks)
    assert same(q.score.marks, p.score.marks)
    assert same(q.notes, p.notes) and same(q.match_index, p.match_index) and same(q.pedal, p.pedal)
    assert q.n_insertions == p.n_insertions and q.source == p.source and q.score.source == p.score.source
    assert q.score.format == "match"


@pytest.mark.data
def test_npz_round_trip_of_a_real_match_file(aligned, tmp_path):
    p = aligned(MOZART_KV282_1)
    assert np.isnan(p.score.notes["tempo_bpm"]).all()     # match files carry no tempo marks: NaN survives
    assert len(p.pedal) > 1000 and p.n_insertions > 0 and (p.match_index < 0).any()
    path = tmp_path / "sub" / "kv282_1.npz"                 # the folder is made
    save_aligned_npz(p, path)
    assert path.is_file() and not list(path.parent.glob("*.tmp*"))
    q = load_aligned_npz(path)
    assert_same_performance(p, q)
    assert same(q.aligned_notes(), p.aligned_notes()) and q.matched.sum() == p.matched.sum()
    save_aligned_npz(q, path)                               # overwriting is fine
    assert_same_performance(p, load_aligned_npz(path))


def test_npz_round_trip_with_markings_tempo_and_no_pedal(tmp_path):
    score = load_score(TWO_BARS)
    assert len(score.tempo_marks) and len(score.dynamics_marks)
    notes = np.zeros(score.n_notes - 1, PERF_NOTE_DTYPE)
    notes["id"] = [f"p{i}" for i in range(len(notes))]
    notes["pitch"] = score.notes["pitch"][1:]
    notes["onset_sec"] = np.arange(len(notes)) * 0.5
    notes["duration_sec"] = 0.4
    notes["velocity"] = 70
    match = np.r_[-1, np.arange(len(notes))]
    p = AlignedPerformance(score=score, notes=notes, match_index=match, pedal=np.zeros(0, PEDAL_DTYPE),
                           n_insertions=2, source="made/up.match")
    path = tmp_path / "p.npz"
    save_aligned_npz(p, path)
    q = load_aligned_npz(path)
    assert q.pedal.dtype == PEDAL_DTYPE and len(q.pedal) == 0
    assert same(q.score.tempo_marks, score.tempo_marks) and q.score.tempo_marks["text"][0].startswith("q=120")
    assert same(q.score.notes, score.notes) and same(q.notes, notes) and q.match_index.tolist() == match.tolist()
    assert q.n_insertions == 2 and q.source == "made/up.match"


@pytest.mark.parametrize("content", [None, b"", b"this is not a match file\n"])
def test_load_aligned_refuses_bad_files(tmp_path, content):
    path = tmp_path / "bad.match"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PerformanceError):
        load_aligned(path)
