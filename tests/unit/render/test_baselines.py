"""render.baselines: deadpan timing is exact; the humanizer's rules show in its output."""
from __future__ import annotations

import numpy as np
import numpy.lib.recfunctions as rfn
import pytest

from render.baselines import GRACE_SEC, LEAD_SEC, deadpan, humanize
from render.encoding import RENDERED_DTYPE
from render.score import DYNAMICS_DTYPE, NOTE_DTYPE, TEMPO_DTYPE, Score
from render.tempo import predict_tempo_bpm


def make_score(bars=16, *, tempo=None, dynamics=(), ts=(4, 4), grace_at=()) -> Score:
    """Melody of quarter notes in staff 1 over half-note chords in staff 2."""
    bar = ts[0] * 4 / ts[1]
    rows = []
    for b in range(bars):
        for k in range(int(bar)):
            on = b * bar + k
            rows.append((f"m{b}_{k}", 72 + (b + k) % 5, on, 1.0, 1, False))
            if k % 2 == 0:
                rows += [(f"c{b}_{k}_{p}", p, on, 2.0, 2, False) for p in (48, 55)]
    for on in grace_at:
        rows.append((f"g{on}", 79, float(on), 0.0, 1, True))
    notes = np.zeros(len(rows), NOTE_DTYPE)
    for f, vals in zip(("id", "pitch", "onset_beat", "duration_beat", "staff", "is_grace"),
                       zip(*rows)):
        notes[f] = vals
    notes["voice"] = notes["staff"]
    notes["bar_onset_beat"] = np.floor(notes["onset_beat"] / bar) * bar
    notes["bar_duration_beat"] = bar
    notes["ts_num"], notes["ts_den"] = ts
    tempo_marks = np.array(tempo or [], TEMPO_DTYPE)
    dyn = np.array(list(dynamics), DYNAMICS_DTYPE)
    on = notes["onset_beat"]
    notes["tempo_bpm"] = np.nan
    for t_on, bpm, _ in tempo or []:
        notes["tempo_bpm"][on >= t_on] = bpm
    for d_on, v, _ in dynamics:
        notes["velocity_written"][on >= d_on] = v
    notes = notes[np.lexsort((notes["pitch"], notes["onset_beat"]))]
    return Score(notes=notes, tempo_marks=tempo_marks, dynamics_marks=dyn, format="test")


def ioi_per_beat(perf, score):
    """Seconds per beat between successive onset groups (melody notes), shape (G-1,)."""
    mel = (score.notes["staff"] == 1) & ~score.notes["is_grace"]
    return np.diff(perf["onset_sec"][mel]) / np.diff(score.notes["onset_beat"][mel])


def test_deadpan_exact_at_written_tempo():
    s = make_score(4, tempo=[(0.0, 120.0, "q=120")], dynamics=[(0.0, 49, "p"), (8.0, 96, "f")])
    p = deadpan(s)
    assert p.dtype == RENDERED_DTYPE and list(p["id"]) == list(s.notes["id"])
    np.testing.assert_allclose(p["onset_sec"], s.notes["onset_beat"] * 0.5)
    np.testing.assert_allclose(p["duration_sec"], s.notes["duration_beat"] * 0.5)
    assert list(p["velocity"]) == list(s.notes["velocity_written"])
    assert set(p["velocity"][s.notes["onset_beat"] >= 8]) == {96}
    assert np.all(p["deviation_100"] == 0) and np.all(p["tempo_log_50"] == 0)   # at the written tempo
    assert np.array_equal(p["duration_100"], np.rint(s.notes["duration_beat"] * 100))


def test_deadpan_defaults_and_overrides():
    s = make_score(2)
    p = deadpan(s)
    # no mark: the tempo predicted from the score (render.tempo), constant over the piece
    bpm = predict_tempo_bpm(s.notes)
    assert 30 <= bpm <= 240
    np.testing.assert_allclose(p["onset_sec"], s.notes["onset_beat"] * 60 / bpm)
    assert set(p["velocity"]) == {64}
    q = deadpan(s, tempo_bpm=60, velocity=30)
    np.testing.assert_allclose(q["onset_sec"], s.notes["onset_beat"])
    assert set(q["velocity"]) == {30}


def test_deadpan_follows_tempo_changes_and_scales_them():
    s = make_score(2, tempo=[(0.0, 120.0, "a"), (4.0, 60.0, "b")])
    on = s.notes["onset_beat"]
    want = np.where(on < 4, on * 0.5, 2.0 + (on - 4.0))
    np.testing.assert_allclose(deadpan(s)["onset_sec"], want)
    np.testing.assert_allclose(deadpan(s, tempo_bpm=240)["onset_sec"], want / 2)
    long = s.notes["duration_beat"] == 2
    across = deadpan(s)["duration_sec"][long & (on == 2)]  # a half note from beat 2 ends at 4
    np.testing.assert_allclose(across, 1.0)


def test_grace_notes_come_just_before_their_main_note():
    s = make_score(2, tempo=[(0.0, 120.0, "")], grace_at=(0, 5))
    p = deadpan(s)
    g = s.notes["is_grace"]
    assert p["onset_sec"].min() == 0 and np.all(p["duration_sec"][g] == GRACE_SEC)
    main5 = p["onset_sec"][(s.notes["onset_beat"] == 5) & ~g]
    grace5 = p["onset_sec"][(s.notes["onset_beat"] == 5) & g]
    np.testing.assert_allclose(grace5 + GRACE_SEC, main5)
    np.testing.assert_allclose(p["onset_sec"][~g], GRACE_SEC + s.notes["onset_beat"][~g] * 0.5)


def test_humanize_final_ritardando_slows_the_last_bars():
    s = make_score(16, tempo=[(0.0, 100.0, "")])
    p = humanize(s, seed=1)
    spb = ioi_per_beat(p, s)
    beats = np.unique(s.notes["onset_beat"])[:-1]
    last2 = beats >= 56
    middle = (beats >= 16) & (beats < 48)
    assert spb[last2].mean() > 1.2 * spb[middle].mean()
    assert spb[-1] > 1.6 * 60 / 100  # the last beat 1.6 times as long as at the written tempo
    assert np.all(np.diff(p["tempo_bpm"][s.notes["onset_beat"] >= 56]) <= 1e-3)


def test_humanize_phrase_arch_is_faster_inside_phrases():
    s = make_score(16, tempo=[(0.0, 100.0, "")])
    p = humanize(s, seed=0, jitter_sec=0.0)
    beat = s.notes["onset_beat"]
    t = p["tempo_bpm"]
    edge = np.isin(beat, [16.0, 32.0])  # starts of 4-bar phrases
    inside = np.isin(beat, [22.0, 38.0])  # near their turn points
    assert t[inside].min() > t[edge].max() * 1.05


def test_humanize_melody_leads_and_is_louder():
    s = make_score(8, tempo=[(0.0, 100.0, "")], dynamics=[(0.0, 64, "mp")])
    p = humanize(s, seed=3, jitter_sec=0.0, jitter_velocity=0.0)
    n = s.notes
    chords = n["onset_beat"][n["staff"] == 2]
    lead, vel_gap = [], []
    for on in np.unique(chords):
        at = n["onset_beat"] == on
        top = at & (n["staff"] == 1)
        lead.append(p["onset_sec"][at & (n["staff"] == 2)].mean() - p["onset_sec"][top][0])
        vel_gap.append(p["velocity"][top][0] - p["velocity"][at & (n["staff"] == 2)].mean())
    np.testing.assert_allclose(lead, LEAD_SEC, atol=1e-9)
    assert min(vel_gap) >= 5


def test_humanize_louder_at_f_than_p_with_crescendo_into_f():
    s = make_score(8, tempo=[(0.0, 100.0, "")], dynamics=[(0.0, 49, "p"), (16.0, 96, "f")])
    p = humanize(s, seed=0)
    on = s.notes["onset_beat"]
    assert p["velocity"][on >= 16].mean() > p["velocity"][on < 12].mean() + 25
    lh = s.notes["staff"] == 2
    ramp = [p["velocity"][lh & (on == b)].mean() for b in (12.0, 14.0, 16.0)]
    assert ramp[2] > ramp[1] + 10 > ramp[0] + 20  # a crescendo over the bar before the f


def test_humanize_is_seeded_and_varies_with_seed():
    s = make_score(4, tempo=[(0.0, 100.0, "")])
    a, b, c = humanize(s, seed=5), humanize(s, seed=5), humanize(s, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a["onset_sec"], c["onset_sec"])
    assert a.dtype == RENDERED_DTYPE and list(a["id"]) == list(s.notes["id"])
    assert a["onset_sec"].min() == 0 and np.all(a["duration_sec"] > 0)
    assert np.all((a["velocity"] >= 1) & (a["velocity"] <= 127))


@pytest.mark.parametrize("amount", [0.0])
def test_humanize_amount_zero_is_deadpan_timing(amount):
    s = make_score(4, tempo=[(0.0, 90.0, "")])
    np.testing.assert_allclose(humanize(s, amount=amount)["onset_sec"], deadpan(s)["onset_sec"],
                               atol=1e-9)


def test_baselines_on_a_loaded_score():
    from render.loaders import load_score
    from tests.data.corpus import TWO_BARS

    s = load_score(TWO_BARS)
    for p in (deadpan(s), humanize(s)):
        assert len(p) == s.n_notes and np.all(np.isfinite(p["onset_sec"]))


def test_humanize_accents_and_terraced_dynamics():
    s = make_score(8, tempo=[(0.0, 100.0, "")],
                   dynamics=[(0.0, 49, "p"), (9.0, 100, "sf"), (16.0, 96, "f"), (18.0, 49, "p"),
                             (20.0, 96, "f")])
    p = humanize(s, seed=0, jitter_velocity=0.0)
    on, mel = s.notes["onset_beat"], s.notes["staff"] == 1
    v = {b: float(p["velocity"][mel & (on == b)][0]) for b in (8.0, 9.0, 10.0, 17.0, 18.0, 19.0)}
    assert v[9.0] > v[8.0] + 30 and v[9.0] > v[10.0] + 30  # sf is an accent, not a level
    assert v[17.0] > v[18.0] + 30 and v[19.0] < v[17.0] - 30  # f-p-f two beats apart: no ramp


def test_the_pedal_rule_changes_with_the_bass_and_lifts_at_rests_and_staccato():
    from render.baselines import pedal_rule
    from render.marks import empty_marks
    from render.pedal import pedal_for_take

    score = make_score(4)                     # C3 + G3 half notes under the melody: one bass throughout
    cls = pedal_rule(score)
    assert set(cls.tolist()) == {80}          # held: the bass never changes
    n = score.notes
    moved = n.copy()
    moved["pitch"] = np.where((moved["pitch"] == 48) & (moved["onset_beat"] >= 8), 43, moved["pitch"])  # G2 from bar 3
    cls = pedal_rule(Score(notes=moved, format="test"))
    first_of_bar3 = (moved["onset_beat"] == 8)
    assert (cls[first_of_bar3] == 26).all() and (cls[moved["onset_beat"] == 9] == 80).all()
    marks = empty_marks(len(n))
    marks["artic"][n["onset_beat"] == 5] = 1      # a staccato note: no pedal over it
    cls = pedal_rule(Score(notes=n, marks=marks, format="test"))
    assert (cls[n["onset_beat"] == 5] == 0).all()
    perf = humanize(score, seed=1)
    assert (perf["sustain"] == 80).all() and (humanize(score, pedal=False)["sustain"] == 0).all()
    take = perf.copy()
    ev = pedal_for_take(n["onset_beat"], rfn.append_fields(
        take, "index", np.arange(len(take)), usemask=False))
    assert ev[0]["number"] == 64 and ev[0]["value"] == 127 and len(ev) <= 2
