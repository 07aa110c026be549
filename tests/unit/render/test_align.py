"""render.align: performance MIDI files aligned to scores (whole, passage, wrong piece, bad files)."""
from __future__ import annotations

import csv

import numpy as np
import pretty_midi
import pytest

from render.align import align_midi, align_notes, load_performance_midi, locate_passage
from render.errors import AlignmentError, PerformanceError
from render.loaders import load_score
from tests.data.corpus import make_midi


def melody(seed: int, n: int = 120):
    """A two-voice piece: a random melody in eighths over a bass on every beat."""
    rng = np.random.default_rng(seed)
    notes = [(int(p), k * 0.5, 0.5, 80) for k, p in enumerate(60 + rng.integers(0, 15, n))]
    notes += [(int(p), float(k), 1.0, 70) for k, p in enumerate(36 + rng.integers(0, 12, n // 2))]
    return notes


@pytest.fixture(scope="module")
def piece(tmp_path_factory):
    d = tmp_path_factory.mktemp("align")
    return load_score(make_midi(d / "score.mid", melody(0), ts=(4, 4))), d


def perform(score, path, *, start=0, stop=None, seed=1):
    """A human-like performance MIDI of score notes [start, stop): rubato, jitter, dropped notes."""
    rng = np.random.default_rng(seed)
    n = score.notes[start:stop]
    beat = n["onset_beat"] - n["onset_beat"][0]
    bpm = 100 + 20 * np.sin(beat / 8.0)
    t = 0.5 + np.cumsum(np.r_[0.0, np.diff(beat) * 60.0 / bpm[:-1]]) + rng.normal(0, 0.015, len(n))
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    keep = rng.random(len(n)) > 0.03                                # a few notes left out
    for k in np.flatnonzero(keep):
        inst.notes.append(pretty_midi.Note(int(rng.integers(40, 100)), int(n["pitch"][k]), t[k], t[k] + 0.25))
    inst.notes.append(pretty_midi.Note(60, 99, t[-1] + 0.1, t[-1] + 0.3))   # one wrong extra note
    pm.instruments.append(inst)
    pm.write(str(path))
    return keep


def test_whole_performance_aligns_note_for_note(piece):
    score, d = piece
    keep = perform(score, d / "whole.mid")
    aligned, report = align_midi(score, d / "whole.mid")
    assert report.n_matched == keep.sum() and report.n_extra == 1
    assert report.n_missing == (~keep).sum() and report.passage_fraction == 1.0
    # each matched performed note has the pitch of its score note and keeps time order
    m = aligned.matched
    assert np.array_equal(aligned.notes["pitch"][aligned.match_index[m]], score.notes["pitch"][m])
    played = aligned.notes["onset_sec"][aligned.match_index[m]]
    assert np.all(np.diff(played[np.argsort(score.notes["onset_beat"][m], kind="stable")]) > -0.1)


def test_a_passage_is_located_and_aligned(piece):
    score, d = piece
    start, stop = 90, 150
    keep = perform(score, d / "part.mid", start=start, stop=stop, seed=2)
    aligned, report = align_midi(score, d / "part.mid")
    assert report.n_matched >= keep.sum() - 2
    on = score.notes["onset_beat"]
    assert abs(report.start_beat - on[start]) <= 1.5 and abs(report.end_beat - on[stop - 1]) <= 1.5
    assert 0.2 < report.passage_fraction < 0.45
    assert not (aligned.matched & (on < on[start] - 2)).any()


def test_another_piece_is_refused_with_a_clear_message(piece, tmp_path):
    score, _ = piece
    other = load_score(make_midi(tmp_path / "other.mid", melody(7), ts=(4, 4)))
    perform(other, tmp_path / "other_perf.mid")
    with pytest.raises(AlignmentError, match="does not fit this score"):
        align_midi(score, tmp_path / "other_perf.mid")


@pytest.mark.parametrize("content,message", [
    (b"", "missing or empty"), (b"hello, not midi", "not a MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", "no notes"),
    (b"MThd\x00\x00\x00\x06garbage", "not a readable MIDI file"),
])
def test_bad_performance_files(piece, tmp_path, content, message):
    score, _ = piece
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(PerformanceError, match=message):
        align_midi(score, path)


def test_locate_passage_on_an_exact_copy(piece):
    score, _ = piece
    notes, _ = load_performance_midi(make_midi(piece[1] / "exact.mid", [
        (int(n["pitch"]), float(n["onset_beat"]) - 40, float(n["duration_beat"]), 64)
        for n in score.notes if 40 <= n["onset_beat"] < 50]))
    onsets = np.unique(score.notes["onset_beat"])
    g0, g1 = locate_passage(score, notes)
    assert onsets[g0] == 40 and onsets[g1] == 49.5


@pytest.fixture(scope="module")
def midi_rows(shared_data):
    return [r for r in csv.DictReader(open(shared_data / "split.csv")) if r["perf_midi"]]


@pytest.mark.parametrize("k", [0, 1])
def test_real_performance_midi_agrees_with_the_match_file(shared_data, midi_rows, tmp_path, k):
    from render.dataset import unpack
    from render.performance import load_aligned

    r = midi_rows[k]
    score = load_score(unpack(shared_data / r["score_file"], tmp_path, r["score_file"]))
    truth = load_aligned(unpack(shared_data / r["match_file"], tmp_path, r["match_file"]))
    t_true = {str(truth.score.notes["id"][i]): truth.notes["onset_sec"][truth.match_index[i]]
              for i in np.flatnonzero(truth.matched)}
    aligned, report = align_midi(score, shared_data / r["perf_midi"])
    m = np.flatnonzero(aligned.matched)
    onsets = aligned.notes["onset_sec"]
    agree = sum(abs(t_true.get(str(score.notes["id"][i]), -9.0) - onsets[aligned.match_index[i]]) < 0.02 for i in m)
    assert agree / len(t_true) > 0.97, report
    # a performance of another work of the corpus is refused
    other = next(o for o in midi_rows if o["work"] != r["work"] and o["composer"] != r["composer"])
    with pytest.raises(AlignmentError):
        align_midi(score, shared_data / other["perf_midi"])
    # its middle third alone is found where it lies in the score
    notes, _ = load_performance_midi(shared_data / r["perf_midi"])
    part = notes[len(notes) // 3: 2 * len(notes) // 3]
    _, rep = align_notes(score, part)
    assert rep.n_matched > 0.9 * len(part) and 0.25 < rep.passage_fraction < 0.45
