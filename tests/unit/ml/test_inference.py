"""The streaming Renderer on a tiny random-weight model: reproducibility, streaming, modes, errors."""
from __future__ import annotations

import numpy as np
import pytest

from ml.data import head_scope_mask
from ml.defaults import DEFAULT_TEMPERATURE, HEAD_TEMPERATURE, PEDAL_HEADS, REFERENCE_RANDOMNESS
from ml.inference import (RENDERED_CHUNK_DTYPE, Reference, Renderer, head_temperatures, load_reference,
                          reference_from_aligned, reference_from_file, save_reference, written_tempi)
from ml.model import DECIDE, EXPECTED, HEADS
from render.encoding import ENCODED_DTYPE
from render.performance import PERF_NOTE_DTYPE, PEDAL_DTYPE, AlignedPerformance
from tests.unit.ml.conftest import make_score

H_NAMES = list(HEADS)

V1_ENCODED_DTYPE = np.dtype([("velocity", "i2"), ("duration_100", "i2"), ("deviation_100", "i2"),
                             ("tempo_dev_bpm", "i2")])


@pytest.fixture(scope="module")
def renderer(tiny_checkpoint):
    return Renderer.load(tiny_checkpoint)


def render_all(renderer, score, **kw):
    return np.concatenate(list(renderer.render(score, **kw)))


def test_renders_every_note_in_order(renderer, score):
    out = render_all(renderer, score, seed=1)
    assert out.dtype == RENDERED_CHUNK_DTYPE
    assert {"tempo_log_50", "sustain", "soft"} <= set(out.dtype.names) and "tempo_dev_bpm" not in out.dtype.names
    assert np.array_equal(out["index"], np.arange(score.n_notes))
    assert np.array_equal(out["id"], score.notes["id"])
    assert (out["velocity"] >= 1).all() and (out["velocity"] <= 127).all()
    assert (out["duration_sec"] > 0).all() and (out["onset_sec"] >= 0).all()
    assert (np.abs(out["tempo_log_50"]) <= 50).all()
    assert (out["sustain"] >= 0).all() and (out["sustain"] <= 80).all() and set(out["soft"].tolist()) <= {0, 1}
    # Later score onsets are (mostly) later in time: the tempo integrates forward.
    firsts = out["onset_sec"][np.r_[True, np.diff(score.notes["onset_beat"]) > 0]]
    assert firsts[-1] > firsts[0]


def test_seeded_renders_are_identical_and_seeds_differ(renderer, score):
    a, b = render_all(renderer, score, seed=7), render_all(renderer, score, seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a["z"], render_all(renderer, score, seed=8)["z"])
    # with the notes sampled too (the tiny untrained model's z barely moves the expected classes)
    c, d = (render_all(renderer, score, seed=s, temperature=REFERENCE_RANDOMNESS) for s in (7, 8))
    assert not np.array_equal(c["velocity"], d["velocity"])


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
    out = render_all(renderer, score, seed=4, variations=3, temperature=REFERENCE_RANDOMNESS)
    assert sorted(set(out["variation"].tolist())) == [0, 1, 2]
    takes = [out[out["variation"] == v] for v in range(3)]
    assert all(len(t) == score.n_notes for t in takes)
    assert all(np.array_equal(np.sort(t["index"]), np.arange(score.n_notes)) for t in takes)
    assert not np.array_equal(takes[0]["velocity"], takes[1]["velocity"])


@pytest.mark.parametrize("chunk_notes", [3, 64])
def test_tempo_once_per_beat_and_pedal_once_per_chord(renderer, chunk_notes):
    """Heads outside their scope repeat the previous note's class, across chunk boundaries too."""
    score = make_score(12)
    out = render_all(renderer, score, seed=9, variations=2, chunk_notes=chunk_notes, temperature=2.0)
    scope = head_scope_mask(score.notes["onset_beat"])
    H = list(HEADS)
    for v in range(2):
        take = np.sort(out[out["variation"] == v], order="index")
        for name, field in (("tempo", "tempo_log_50"), ("sustain", "sustain"), ("soft", "soft")):
            off = np.flatnonzero(~scope[:, H.index(name)])
            assert len(off) and np.array_equal(take[field][off], take[field][off - 1]), field
        beats = np.floor(score.notes["onset_beat"]).astype(int)
        assert len(set(zip(beats.tolist(), take["tempo_bpm"].tolist()))) == len(set(beats.tolist()))
        assert len(set(take["tempo_log_50"][scope[:, H.index("tempo")]].tolist())) > 1  # it is sampled


def test_expressiveness_zero_is_deadpan_timing(renderer, score):
    out = render_all(renderer, score, seed=5, expressiveness=0.0, base_tempo_bpm=120)
    assert (out["deviation_100"] == 0).all() and (out["tempo_log_50"] == 0).all()
    assert np.allclose(out["tempo_bpm"], 120.0)  # a flat tempo at the base tempo
    beats = score.notes["onset_beat"]
    assert np.allclose(out["onset_sec"] - out["onset_sec"][0], (beats - beats[0]) * 0.5)


def test_a_gain_scales_its_heads_deviations_and_leaves_the_others(renderer, score):
    # sampled classes (whole numbers); the gain acts after decoding, so both draw the same ones
    plain = render_all(renderer, score, seed=5, temperature=1.0, base_tempo_bpm=120)
    gained = render_all(renderer, score, seed=5, temperature=1.0, base_tempo_bpm=120,
                        gains={"tempo": 2.0, "deviation": 0.0})
    assert (plain["tempo_log_50"] != 0).any() and (plain["deviation_100"] != 0).any()
    assert np.array_equal(gained["tempo_log_50"], 2 * plain["tempo_log_50"])
    assert (gained["deviation_100"] == 0).all()
    assert np.array_equal(gained["velocity"], plain["velocity"])
    assert np.array_equal(gained["duration_100"], plain["duration_100"])
    with pytest.raises(ValueError, match="gains"):
        list(renderer.render(score, gains={"pitch": 2.0}))


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
    # g: the pianist's speed against the marking (100 bpm written, 0.8 s per beat played = 75 bpm)
    assert ref.tempo_ratio == pytest.approx(0.75, rel=0.02)
    assert (np.abs(ref.encoded["tempo_log_50"]) <= 1).all()  # a steady tempo at g * W
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
    assert np.array_equal(back.score.notes, ref.score.notes) and np.array_equal(back.score.marks, ref.score.marks)
    assert back.tempo_ratio == ref.tempo_ratio
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
    score.notes["tempo_bpm"] = np.nan  # no mark, no word: the tempo predicted from the score
    from render.tempo import predict_tempo_bpm
    assert np.allclose(written_tempi(score, None), predict_tempo_bpm(score.notes))
    assert np.allclose(written_tempi(score, 80.0), 80.0)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        Renderer.load(tmp_path / "nope.pt")


def test_randomness_zero_takes_the_expected_classes_whatever_the_seed(renderer, score):
    """With z fixed, sampling is the only randomness: at randomness 0 the notes' expression no
    longer depends on the seed (the pedal is still drawn); more randomness samples the notes."""
    notes = ["velocity", "onset_sec", "duration_sec", "tempo_bpm"]
    a = render_all(renderer, score, seed=1, mode="fixed", temperature=0.0)
    b = render_all(renderer, score, seed=2, mode="fixed", temperature=0.0)
    assert all(np.array_equal(a[f], b[f]) for f in notes)
    c = render_all(renderer, score, seed=1, mode="fixed", temperature=1.0)
    d = render_all(renderer, score, seed=2, mode="fixed", temperature=1.0)
    assert not all(np.array_equal(c[f], d[f]) for f in notes)
    greedy = render_all(renderer, score, seed=1, mode="fixed", temperature=np.zeros(len(HEADS)))
    e = render_all(renderer, score, seed=2, mode="fixed", temperature=np.zeros(len(HEADS)))
    assert np.array_equal(greedy, e)  # every head at its most likely class: nothing drawn at all


# -- model v2: per-head temperatures, references with a speed, v1 references ---------------------
def test_head_temperatures_scale_the_per_head_defaults():
    pedal = np.array([h in PEDAL_HEADS for h in HEADS])
    base = np.array([HEAD_TEMPERATURE[h] for h in HEADS], np.float32)
    np.testing.assert_allclose(head_temperatures(REFERENCE_RANDOMNESS), base)
    twice = head_temperatures(2 * REFERENCE_RANDOMNESS)
    np.testing.assert_allclose(twice[~pedal], 2 * base[~pedal], rtol=1e-6)
    np.testing.assert_allclose(twice[pedal], base[pedal])  # the pedal: the same at every randomness
    assert DEFAULT_TEMPERATURE == 0.0
    zero = head_temperatures(0.0)
    assert (zero[~pedal] == EXPECTED).all() and np.array_equal(zero[pedal], base[pedal])
    # velocity and tempo sharper than as trained (their variety comes from z), chosen on val
    assert HEAD_TEMPERATURE["velocity"] < 1.0 and HEAD_TEMPERATURE["tempo"] < 1.0


def test_a_head_defaulting_to_its_expected_class_keeps_it_at_every_randomness(monkeypatch):
    from ml import inference

    monkeypatch.setitem(inference.HEAD_TEMPERATURE, "tempo", EXPECTED)
    k = list(HEADS).index("tempo")
    for t in (0.0, 0.3, REFERENCE_RANDOMNESS, 2.0):
        temps = head_temperatures(t)
        assert temps[k] == EXPECTED
        if t > 0:   # the others sampled (the sustain pattern: DECIDE, whether it comes up first)
            others = np.delete(temps, k)
            assert ((others > 0) | (np.delete(np.array(H_NAMES), k) == "sustain") & (others == DECIDE)).all()


def test_per_head_temperatures_in_render(renderer, score):
    """Velocity greedy, the rest sampled: with z fixed the velocities ignore the seed."""
    temps = np.ones(len(HEADS), np.float32)
    temps[0] = 0.0
    a = render_all(renderer, score, seed=1, mode="fixed", temperature=temps)
    b = render_all(renderer, score, seed=2, mode="fixed", temperature=temps)
    assert np.array_equal(a["velocity"], b["velocity"])
    assert not np.array_equal(a["duration_100"], b["duration_100"])
    greedy = render_all(renderer, score, seed=3, mode="fixed", temperature=np.zeros(len(HEADS)))
    assert np.array_equal(a["velocity"], greedy["velocity"])
    decide_velocity = np.ones(len(HEADS))
    decide_velocity[0] = DECIDE    # the sustain head's alone
    for bad in (np.ones(3), -0.5 * np.ones(len(HEADS)), 3 * np.ones(len(HEADS)), decide_velocity):
        with pytest.raises(ValueError, match="per-head temperatures"):
            list(renderer.render(score, temperature=bad))


def test_reference_tempo_ratio_sets_the_speed_without_a_base_tempo(renderer):
    score = make_score(16)  # marked 100 bpm
    n = score.n_notes
    enc = np.zeros(n, ENCODED_DTYPE)
    enc["velocity"], enc["duration_100"] = 70, 50
    beats = score.notes["onset_beat"]
    for ratio, base, sec_per_beat in ((2.0, None, 0.3), (0.5, None, 1.2), (2.0, 120.0, 0.5), (1.0, None, 0.6)):
        ref = Reference(index=np.arange(n), encoded=enc, tempo_ratio=ratio)
        out = render_all(renderer, score, seed=1, reference=ref, base_tempo_bpm=base, expressiveness=0.0)
        assert np.allclose(out["onset_sec"] - out["onset_sec"][0], (beats - beats[0]) * sec_per_beat), (ratio, base)
    # a primed render from a real-looking reference keeps its pianist's speed (75 bpm here)
    ref, _ = primed_render(renderer)
    out = render_all(renderer, score, seed=1, reference=ref, expressiveness=0.0)
    assert np.allclose(out["onset_sec"] - out["onset_sec"][0], (beats - beats[0]) * 60.0 / (100 * ref.tempo_ratio))


def write_v1_reference(path, score, index, vel, dev_bpm):
    """A reference as model v1 saved it: tempo as bpm from the written tempo, no pedal, no ratio."""
    enc = np.zeros(len(index), V1_ENCODED_DTYPE)
    enc["velocity"], enc["duration_100"], enc["deviation_100"], enc["tempo_dev_bpm"] = vel, 80, 3, dev_bpm
    arrays = dict(index=np.asarray(index, np.int64), encoded=enc)
    if score is not None:
        arrays.update(notes=score.notes, tempo_marks=score.tempo_marks, dynamics_marks=score.dynamics_marks)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def test_a_v1_reference_loads_and_renders(renderer, tmp_path):
    score = make_score(16, tempo=100.0)
    n = score.n_notes
    dev = np.resize(np.array([0, 20, -50, 49, -10]), n)
    write_v1_reference(tmp_path / "v1.npz", score, np.arange(n), 90, dev)
    ref = load_reference(tmp_path / "v1.npz")
    assert ref.encoded.dtype == ENCODED_DTYPE
    assert (ref.encoded["velocity"] == 90).all() and (ref.encoded["duration_100"] == 80).all()
    assert (ref.encoded["deviation_100"] == 3).all()
    assert (ref.encoded["sustain"] == 0).all() and (ref.encoded["soft"] == 0).all()
    # the same tempo (written 100 bpm + the v1 deviation), as g * W * 2 ** (tempo_log_50 / 50)
    tempo = 100.0 * ref.tempo_ratio * 2.0 ** (ref.encoded["tempo_log_50"] / 50.0)
    np.testing.assert_allclose(tempo, 100.0 + dev, rtol=0.0075)
    out = render_all(renderer, score, seed=2, reference=ref, variations=2)
    assert len(out) == 2 * n
    plain = render_all(renderer, score, seed=2, variations=2)
    assert not np.array_equal(out["z"], plain["z"])
    # primes another score too, and a v1 file without its score (tempo against 100 bpm)
    other = make_score(8, tempo=70.0)
    assert len(render_all(renderer, other, seed=2, reference=ref)) == other.n_notes
    write_v1_reference(tmp_path / "bare.npz", None, np.arange(10), 60, 20)
    bare = load_reference(tmp_path / "bare.npz")
    assert bare.score is None
    np.testing.assert_allclose(100.0 * bare.tempo_ratio * 2.0 ** (bare.encoded["tempo_log_50"] / 50.0), 120.0,
                               rtol=0.0075)
    assert len(render_all(renderer, score, seed=2, reference=bare)) == n


def steady_performance():
    """An 8-bar score and a steady performance of every note of it (0.6 s a beat, velocity 64)."""
    score = make_score(8)
    notes = score.notes
    played = np.zeros(len(notes), PERF_NOTE_DTYPE)
    played["id"] = [f"p{i}" for i in range(len(notes))]
    played["pitch"], played["velocity"] = notes["pitch"], 64
    played["onset_sec"] = notes["onset_beat"] * 0.6
    played["duration_sec"] = notes["duration_beat"] * 0.5
    return score, played


def test_reference_pedal_is_encoded(renderer):
    """A performance with the sustain pedal down gives non-zero sustain classes in the reference."""
    score, played = steady_performance()
    notes = score.notes
    pedal = np.array([(0.0, 64, 127), (2.3, 64, 0), (2.4, 64, 127), (9.0, 64, 0)], PEDAL_DTYPE)
    perf = AlignedPerformance(score=score, notes=played, match_index=np.arange(len(notes)), pedal=pedal)
    ref = reference_from_aligned(score, perf)
    assert ref.encoded["sustain"].max() > 0
    bare = reference_from_aligned(score, AlignedPerformance(score=score, notes=played,
                                                            match_index=np.arange(len(notes))))
    assert (bare.encoded["sustain"] == 0).all()
    assert len(render_all(renderer, score, seed=1, reference=ref)) == score.n_notes


def test_z_temperature_zero_samples_the_prior_mean(renderer, score):
    """z_temperature scales z's spread around the prior mean: at 0 a sampled take is the
    point estimate's z (mu), whatever the seed."""
    greedy = np.zeros(len(HEADS))  # nothing drawn but z
    a = np.concatenate(list(renderer.render(score, seed=1, z_temperature=0.0, temperature=greedy)))
    b = np.concatenate(list(renderer.render(score, seed=2, mode="perturb", delta=np.zeros(5), temperature=greedy)))
    np.testing.assert_allclose(a["z"], b["z"], atol=1e-5)
    c = np.concatenate(list(renderer.render(score, seed=1, z_temperature=1.0, temperature=greedy)))
    assert not np.allclose(a["z"], c["z"])
    with pytest.raises(ValueError, match="z_temperature"):
        list(renderer.render(score, z_temperature=3.0))


def test_pedal_none_and_as_the_reference(renderer):
    """pedal='none' plays no pedal; pedal='reference' plays the reference pianist's classes on the
    notes it played (the model's elsewhere); the notes themselves are the same render."""
    score, played = steady_performance()
    notes = score.notes
    pedal = np.array([(0.0, 64, 127), (2.3, 64, 0), (2.4, 64, 127), (9.0, 64, 0), (0.0, 67, 127)], PEDAL_DTYPE)
    half = np.arange(len(notes) // 2)   # the reference played the first half only
    perf = AlignedPerformance(score=score, notes=played[half],
                              match_index=np.r_[half, np.full(len(notes) - len(half), -1)], pedal=pedal)
    ref = reference_from_aligned(score, perf)
    model = render_all(renderer, score, seed=3, reference=ref, temperature=1.5)
    none = render_all(renderer, score, seed=3, reference=ref, temperature=1.5, pedal="none")
    as_ref = render_all(renderer, score, seed=3, reference=ref, temperature=1.5, pedal="reference")
    assert (none["sustain"] == 0).all() and (none["soft"] == 0).all()
    for k in ("velocity", "onset_sec", "duration_sec"):
        np.testing.assert_array_equal(none[k], model[k])
    by_index = np.argsort(as_ref["index"], kind="stable")
    got = as_ref[by_index]
    np.testing.assert_array_equal(got["sustain"][ref.index], ref.encoded["sustain"])
    np.testing.assert_array_equal(got["soft"][ref.index], ref.encoded["soft"])
    rest = np.setdiff1d(np.arange(len(notes)), ref.index)
    np.testing.assert_array_equal(got["sustain"][rest], model[by_index]["sustain"][rest])
    assert ref.encoded["sustain"].max() > 0 and ref.encoded["soft"].max() == 1
    with pytest.raises(ValueError, match="needs a reference"):
        list(renderer.render(score, pedal="reference"))
    with pytest.raises(ValueError, match="pedal must be one of"):
        list(renderer.render(score, pedal="half"))
