"""render.tempo: the default tempo of an unmarked score, from its texture.

Synthetic scores check properties that hold whatever the fitted numbers (finite, in range,
deterministic, order-free, one note, grace notes) and what is true musically (shorter note values
go with a slower beat, though with more notes per second; ornaments do not speed a piece up); the
real-data test checks that the shipped coefficients beat the constant default on the val works.
"""
from __future__ import annotations

import lzma
import os
from pathlib import Path

import numpy as np
import pytest

from render import tempo
from render.performance import PERF_NOTE_DTYPE, AlignedPerformance
from render.score import DEFAULT_TEMPO_BPM, NOTE_DTYPE, Score

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("DATASET_CACHE", REPO / ".cache" / "dataset"))


def make_notes(events, ts=(4, 4)) -> np.ndarray:
    """NOTE_DTYPE array, sorted, from (onset_beat, pitch, duration_beat, is_grace) tuples."""
    notes = np.zeros(len(events), NOTE_DTYPE)
    for i, (on, pitch, dur, grace) in enumerate(events):
        notes[i] = (f"n{i}", pitch, on, dur, 1, 1, grace, 0.0, 4.0, ts[0], ts[1], 0, 1, np.nan, 0)
    bar = 4.0 * ts[0] / ts[1] if ts[1] else 4.0
    notes["bar_onset_beat"] = np.floor(notes["onset_beat"] / bar) * bar
    notes["bar_duration_beat"] = bar
    return notes[np.lexsort((notes["pitch"], notes["onset_beat"]))]


def running(step: float, beats: float = 64.0, ts=(4, 4)) -> np.ndarray:
    """Broken chords in notes of ``step`` quarters (0.25: a prelude in sixteenths)."""
    pattern = [60, 64, 67, 72, 76, 67, 72, 76]
    n = int(round(beats / step))
    return make_notes([(k * step, pattern[k % 8] + (k // 16) % 3, step, False) for k in range(n)], ts)


def chorale(step: float = 2.0, beats: float = 64.0, voices=(48, 55, 64, 72)) -> np.ndarray:
    """Four-voice block chords every ``step`` quarters."""
    n = int(round(beats / step))
    return make_notes([(k * step, p + k % 3, step, False) for k in range(n) for p in voices])


def test_features_are_finite_and_fixed_length_for_odd_scores():
    cases = {
        "one note": make_notes([(0.0, 60, 1.0, False)]),
        "one grace note": make_notes([(0.0, 60, 0.0, True)]),
        "one chord": make_notes([(0.0, p, 2.0, False) for p in (48, 60, 64, 67)]),
        "grace notes among others": make_notes([(0.0, 62, 0.0, True), (0.0, 60, 1.0, False),
                                                (1.0, 64, 1.0, False)]),
        "no time signature": running(0.25, 8.0, ts=(0, 0)),
        "tuplets and long notes": make_notes([(k / 3, 60 + k, 1 / 3, False) for k in range(9)]
                                             + [(3.0, 48, 8.0, False)]),
    }
    for name, notes in cases.items():
        x = tempo.score_tempo_features(notes)
        assert x.shape == (len(tempo.FEATURE_NAMES),) and np.isfinite(x).all(), name
        bpm = tempo.predict_tempo_bpm(notes)
        assert np.isfinite(bpm) and tempo.MIN_BPM <= bpm <= tempo.MAX_BPM, (name, bpm)
    with pytest.raises(ValueError):
        tempo.score_tempo_features(np.zeros(0, NOTE_DTYPE))


def test_prediction_is_deterministic_and_independent_of_note_order():
    notes = running(0.25)
    shuffled = notes[np.random.default_rng(0).permutation(len(notes))]
    assert tempo.predict_tempo_bpm(notes) == tempo.predict_tempo_bpm(notes)
    assert tempo.predict_tempo_bpm(shuffled) == tempo.predict_tempo_bpm(notes)
    np.testing.assert_array_equal(tempo.score_tempo_features(shuffled), tempo.score_tempo_features(notes))


@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (6, 8), (2, 2)])
def test_shorter_note_values_go_with_a_slower_beat_but_more_notes_per_second(ts):
    steps = [0.125, 0.25, 0.5, 1.0]  # running 32nds, 16ths, 8ths, quarters
    bpm = np.array([tempo.predict_tempo_bpm(running(s, ts=ts)) for s in steps])
    assert (np.diff(bpm) > 0).all(), bpm
    notes_per_sec = bpm / 60.0 / np.array(steps)
    assert (np.diff(notes_per_sec[1:]) < 0).all(), notes_per_sec  # from 16ths up: fewer notes/s


def test_sixteenths_are_not_rushed_and_a_chorale_is_not_dragged():
    sixteenths, chords = tempo.predict_tempo_bpm(running(0.25)), tempo.predict_tempo_bpm(chorale(2.0))
    thirty_seconds = tempo.predict_tempo_bpm(running(0.125))
    assert 50 <= sixteenths <= 130 and 60 <= chords <= 160, (sixteenths, chords)
    assert thirty_seconds < 75, thirty_seconds  # 32nd-note runs: an adagio
    assert sixteenths / 60 * 4 > chords / 60 / 2  # the sixteenths play more notes per second
    # a chorale in half notes is taken with a quicker quarter than the same in quarter notes
    assert chords >= tempo.predict_tempo_bpm(chorale(1.0))


def test_a_bare_melody_gets_a_moderate_tempo():
    melody = chorale(1.0, voices=(72,))  # outside the training range: pulled towards the typical tempo
    assert 60 <= tempo.predict_tempo_bpm(melody) <= 180


def test_ornaments_do_not_speed_a_piece_up():
    notes = running(0.25)
    graces = [(float(on), int(p) + 2, 0.0, True)
              for on, p in zip(notes["onset_beat"][::8], notes["pitch"][::8])]
    ornamented = np.concatenate([notes, make_notes(graces)])
    assert tempo.predict_tempo_bpm(ornamented) <= tempo.predict_tempo_bpm(notes)


def test_fit_recovers_a_linear_law_and_leave_one_out_is_close():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    y = 6.5 + x @ np.array([0.5, -0.25, 0.0])
    model = tempo.fit(x, y, lam=1e-6)
    np.testing.assert_allclose(model["coef"], [0.5, -0.25, 0.0], atol=1e-4)
    assert abs(model["intercept"] - 6.5) < 1e-4
    loo = tempo.leave_one_out(x, y, 1e-6)
    err = np.abs(loo - y)  # exact but for the rows outside the others' range (clipped, shrunk)
    assert loo.shape == (60,) and np.median(err) < 1e-4 and err.max() < 1.0


def test_performance_tempo_is_the_played_tempo_beyond_ten_bpm():
    notes = running(0.25, 32.0)
    for bpm in (60.0, 180.0):
        perf = np.zeros(len(notes), PERF_NOTE_DTYPE)
        perf["id"], perf["pitch"] = notes["id"], notes["pitch"]
        perf["onset_sec"] = notes["onset_beat"] * 60.0 / bpm
        perf["duration_sec"], perf["velocity"] = 0.1, 64
        aligned = AlignedPerformance(score=Score(notes=notes), notes=perf,
                                     match_index=np.arange(len(notes)))
        assert abs(tempo.performance_tempo_bpm(aligned) - bpm) < 0.02 * bpm


def test_written_tempi_read_words_and_metronome_marks(tmp_path):
    xml = ('<score-partwise><direction><direction-type><words>Menuetto</words></direction-type></direction>'
           '<direction><direction-type><words font-weight="bold">Allegro con brio</words></direction-type>'
           '<direction-type><metronome><beat-unit>quarter</beat-unit><beat-unit-dot/>'
           '<per-minute>60</per-minute></metronome></direction-type></direction></score-partwise>')
    (tmp_path / "a.musicxml").write_text(xml)
    with lzma.open(tmp_path / "b.musicxml.xz", "wt") as f:
        f.write(xml.replace("quarter", "half").replace("<beat-unit-dot/>", "").replace("Allegro con brio", "p"))
    assert tempo.written_tempi(tmp_path / "a.musicxml") == (132.0, 90.0)
    assert tempo.written_tempi(tmp_path / "b.musicxml.xz") == (None, 120.0)


def test_cli_refuses_a_folder_without_split_csv(tmp_path, capsys):
    assert tempo.main(["--eval", "--cache", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "no split.csv" in capsys.readouterr().err


@pytest.mark.data
def test_the_fitted_tempo_beats_the_constant_default_on_val(shared_data):
    if not (CACHE / "aligned").is_dir():
        pytest.skip(f"dataset cache {CACHE} is absent (python -m render.dataset builds it; "
                    "DATASET_CACHE sets its path)")
    works = tempo.load_works(CACHE, shared_data, "val")
    if len(works) < 5:
        pytest.skip(f"only {len(works)} val works in {CACHE / 'aligned'} (the dataset build is incomplete)")
    pred = np.array([tempo.predict_from_features(w["x"]) for w in works])
    ours, const = tempo.errors(pred, works), tempo.errors(np.full(len(works), DEFAULT_TEMPO_BPM), works)
    print(f"val: {ours['works']} works, {ours['performances']} performances; predicted MAE "
          f"{ours['mae_bpm']:.1f} bpm ({ours['mape']:.0f} %), constant {const['mae_bpm']:.1f} bpm "
          f"({const['mape']:.0f} %)")
    assert ours["mae_bpm"] < const["mae_bpm"] and ours["octaves"] < const["octaves"]
    assert ours["perf_mae_bpm"] < const["perf_mae_bpm"]
