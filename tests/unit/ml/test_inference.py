"""The streaming Renderer on a tiny random-weight model: reproducibility, streaming, modes, errors."""
from __future__ import annotations

import numpy as np
import pytest

from ml.inference import (RENDERED_CHUNK_DTYPE, Reference, Renderer, load_reference, reference_from_aligned,
                          reference_from_file, save_reference, written_tempi)
from render.encoding import ENCODED_DTYPE
from render.performance import PERF_NOTE_DTYPE, AlignedPerformance
from tests.unit.ml.conftest import make_score


@pytest.fixture(scope="module")
def renderer(tiny_checkpoint):
    return Renderer.load(tiny_checkpoint)


def render_all(renderer, score, **kw):
    return np.concatenate(list(renderer.render(score, **kw)))


def test_renders_every_note_in_order(renderer, score):
    out = render_all(renderer, score, seed=1)
    assert out.dtype == RENDERED_CHUNK_DTYPE
    assert np.array_equal(out["index"], np.arange(score.n_notes))
    assert np.array_equal(out["id"], score.notes["id"])
    assert (out["velocity"] >= 1).all() and (out["velocity"] <= 127).all()
    assert (out["duration_sec"] > 0).all() and (out["onset_sec"] >= 0).all()
    # Later score onsets are (mostly) later in time: the tempo integrates forward.
    firsts = out["onset_sec"][np.r_[True, np.diff(score.notes["onset_beat"]) > 0]]
    assert firsts[-1] > firsts[0]


def test_seeded_renders_are_identical_and_seeds_differ(renderer, score):
    a, b = render_all(renderer, score, seed=7), render_all(renderer, score, seed=7)
    c = render_all(renderer, score, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a["velocity"], c["velocity"])


def test_streamed_chunks_equal_a_one_shot_render(renderer, score):
    chunks = list(renderer.render(score, seed=3, chunk_notes=5))
    assert len(chunks) == -(-score.n_notes // 5) and all(len(c) <= 5 for c in chunks)
    streamed, whole = np.concatenate(chunks), render_all(renderer, score, seed=3, chunk_notes=1000)
    for field in RENDERED_CHUNK_DTYPE.names:
        if field == "onset_sec":  # summed in a different order: equal up to float rounding
            assert np.allclose(streamed[field], whole[field], rtol=0, atol=1e-9)
        else:
            assert np.array_equal(streamed[field], whole[field]), field


def test_fixed_mode_is_deterministic_in_z(renderer, score):
    a = render_all(renderer, score, mode="fixed", seed=1)
    assert np.allclose(a["z"], 0.0)
    z = np.tile(np.linspace(-1, 1, 5, dtype=np.float32), (score.n_notes, 1))
    b = render_all(renderer, score, mode="fixed", z=z, seed=1)
    assert np.allclose(b["z"], z)


def test_perturbation_moves_z_along_delta(renderer, score):
    zero = render_all(renderer, score, mode="perturb", delta=[0, 0, 0, 0, 0], seed=2)
    push = render_all(renderer, score, mode="perturb", delta=[3, 0, 0, 0, 0], seed=2)
    d = push["z"] - zero["z"]
    # Only the first note's prior is unaffected by earlier choices: mu + 3 * exp(gamma) there.
    assert d[0, 0] > 0 and np.allclose(d[0, 1:], 0)
    curve = np.zeros((score.n_notes, 5), np.float32)
    curve[score.n_notes // 2:, 1] = 2.0
    half = render_all(renderer, score, mode="perturb", delta=curve, seed=2)
    assert np.array_equal(half[: score.n_notes // 2], zero[: score.n_notes // 2])


def test_variations_render_in_one_pass(renderer, score):
    out = render_all(renderer, score, seed=4, variations=3)
    assert sorted(set(out["variation"].tolist())) == [0, 1, 2]
    takes = [out[out["variation"] == v] for v in range(3)]
    assert all(len(t) == score.n_notes for t in takes)
    assert not np.array_equal(takes[0]["velocity"], takes[1]["velocity"])


def test_expressiveness_zero_is_deadpan_timing(renderer, score):
    out = render_all(renderer, score, seed=5, expressiveness=0.0, base_tempo_bpm=120)
    assert (out["deviation_100"] == 0).all() and (out["tempo_dev_bpm"] == 0).all()
    beats = score.notes["onset_beat"]
    assert np.allclose(out["onset_sec"] - out["onset_sec"][0], (beats - beats[0]) * 0.5)


def primed_render(renderer):
    """A reference built from a synthetic performance, and the render it primes."""
    score = make_score(16)
    notes = score.notes
    played = np.zeros(len(notes), PERF_NOTE_DTYPE)
    played["id"] = [f"p{i}" for i in range(len(notes))]
    played["pitch"] = notes["pitch"]
    played["onset_sec"] = notes["onset_beat"] * 0.8 + 0.01 * (notes["staff"] == 2)
    played["duration_sec"] = notes["duration_beat"] * 0.4
    played["velocity"] = np.where(notes["staff"] == 1, 100, 40)
    perf = AlignedPerformance(score=score, notes=played, match_index=np.arange(len(notes)))
    ref = reference_from_aligned(score, perf)
    assert len(ref.index) == len(notes)
    assert (ref.encoded["velocity"] == played["velocity"]).all()
    plain = render_all(renderer, score, seed=6)
    primed = render_all(renderer, score, seed=6, reference=ref)
    assert not np.array_equal(plain["z"], primed["z"])
    return ref, primed


def test_reference_primes_the_render(renderer):
    primed_render(renderer)


def test_saved_reference_round_trips_and_primes_another_score(renderer, tmp_path):
    ref, primed = primed_render(renderer)
    save_reference(tmp_path / "ref.npz", ref)
    back = load_reference(tmp_path / "ref.npz")
    assert np.array_equal(back.index, ref.index) and np.array_equal(back.encoded, ref.encoded)
    assert np.array_equal(back.score.notes, ref.score.notes)
    # on its own score the loaded reference renders exactly as the original
    assert np.array_equal(render_all(renderer, ref.score, seed=6, reference=back), primed)
    # on another score it primes from its own score's features: z differs from an unprimed render
    other = make_score(24, tempo=70.0)
    assert not np.array_equal(render_all(renderer, other, seed=6)["z"],
                              render_all(renderer, other, seed=6, reference=back)["z"])
    (tmp_path / "junk.npz").write_bytes(b"not a reference")
    with pytest.raises(ValueError, match="not a saved reference"):
        load_reference(tmp_path / "junk.npz")


def test_reference_from_a_performance_midi(renderer, tmp_path):
    import pretty_midi

    score = make_score(24)
    n = score.notes
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for k in range(len(n)):  # a performance 20 % slower with loud top staff
        t = 0.3 + n["onset_beat"][k] * 0.6
        inst.notes.append(pretty_midi.Note(100 if n["staff"][k] == 1 else 40, int(n["pitch"][k]), t, t + 0.3))
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "perf.mid"))
    ref, report = reference_from_file(score, tmp_path / "perf.mid")
    assert report.n_matched == len(n) and report.n_extra == 0
    assert sorted(set(ref.encoded["velocity"].tolist())) == [40, 100]
    assert len(render_all(renderer, score, seed=1, reference=ref)) == len(n)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="sideways"), "unknown mode"),
    (dict(variations=0), "variations"),
    (dict(expressiveness=-1), "expressiveness"),
    (dict(base_tempo_bpm=5), "base tempo"),
    (dict(temperature=-0.1), "temperature"),
    (dict(mode="perturb", delta=[1, 2]), "delta must be 5 numbers"),
    (dict(mode="fixed", z=np.zeros((3, 5))), "z must be 5 numbers"),
])
def test_bad_arguments_give_clear_errors(renderer, score, kwargs, message):
    with pytest.raises(ValueError, match=message):
        list(renderer.render(score, **kwargs))


def test_reference_validation():
    with pytest.raises(ValueError):
        Reference(index=np.array([3, 2]), encoded=np.zeros(2, ENCODED_DTYPE))


def test_written_tempi_follow_marks_and_base_tempo():
    score = make_score(8, tempo=90.0)
    assert np.allclose(written_tempi(score, None), 90.0)
    assert np.allclose(written_tempi(score, 120.0), 120.0)
    score.notes["tempo_bpm"] = np.nan
    assert np.allclose(written_tempi(score, None), 100.0)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        Renderer.load(tmp_path / "nope.pt")


def test_temperature_zero_takes_the_most_likely_classes(renderer, score):
    """With z fixed, sampling is the only randomness: at temperature 0 the seed no longer matters."""
    a = render_all(renderer, score, seed=1, mode="fixed", temperature=0.0)
    b = render_all(renderer, score, seed=2, mode="fixed", temperature=0.0)
    assert np.array_equal(a, b)
    c = render_all(renderer, score, seed=1, mode="fixed", temperature=1.0)
    d = render_all(renderer, score, seed=2, mode="fixed", temperature=1.0)
    assert not np.array_equal(c, d)
