"""Two baseline performances of any score: deadpan and a rule-based humanizer.

Both return a structured array of dtype `render.encoding.RENDERED_DTYPE`, one row per score
note in score order: id, pitch, onset_sec, duration_sec, velocity, the local tempo
``tempo_bpm`` (quarters/min) and the paper's encoded parameters of that timing
(``duration_100``, ``deviation_100``, ``tempo_log_50``; informative, clipped to the paper's
ranges, while the seconds are exact). The first sounding note starts at 0 s.

Deadpan: the written tempo (tempo marks in force; where there is none, the tempo predicted from
the score by `render.tempo.predict_tempo_bpm`),
durations as written, velocities from the written dynamics (64 where none). Grace notes get
``GRACE_SEC`` each and are played just before their main note.

The humanizer applies published performance rules, each scaled by ``amount``:

1. *Phrase arch* (Todd 1992, "The dynamics of dynamics: a model of musical expression",
   JASA 91(6); the KTH Phrase-arch rule, Friberg, Bresin & Sundberg 2006, "Overview of the
   KTH rule system for musical performance", Advances in Cognitive Psychology 2(2-3)):
   tempo and loudness rise together towards a turn point of each phrase (0.4 of its length)
   and fall back at its ends, on two levels: 4-bar phrases and 8-bar periods (8 and 16 bars
   for bars shorter than 3 beats). Phrases are counted from the first full bar.
2. *Final ritardando* (Friberg & Sundberg 1999, "Does music performance allude to
   locomotion? A model of final ritardandi derived from measurements of stopping runners",
   JASA 105(3)): over the last two bars, tempo v(x) = (1 + (w^q - 1) x)^(1/q) of the
   normalised score position x, with final tempo w = 0.5 and curvature q = 3.
3. *Melody lead* (Palmer 1989, "Mapping musical thought to musical performance", JEP:HPP 15;
   Goebl 2001, JASA 110(1)): the highest note of the upper staff in each chord sounds
   ``LEAD_SEC`` (25 ms) before the other notes and 10 velocity steps louder.
4. *Dynamics from markings*, with crescendo shaping: the velocity of the level marking in
   force (p, f ...; 64 where none), accents (sf, sfz, fz, fp) only on the notes where they
   stand; into a louder level after one that held two bars or more, the velocity rises
   linearly over the preceding bar (a written step up played as a short crescendo), while a
   step down, or a quick alternation, stays sudden (subito, terraced).
5. *High loud* (KTH): +0.15 velocity per semitone above middle C (less below).
6. *Duration contrast* (KTH, Friberg 1991, "Generative rules for music performance",
   Computer Music Journal 15(2)): notes shorter than 0.6 s are played shorter (down to 80 %)
   and softer (down to 4 steps), in proportion to how short they are.
7. Seeded random jitter: onset N(0, 6 ms) per note, velocity N(0, 2.5) per note.
8. *Pedal* (``pedal=True``): the legato sustain pedal of piano method books, changed where the
   bass changes: the bass of a beat is its lowest note; the first chord of a beat with a new
   bass lifts the pedal in the first quarter of its interval and presses it again (class 26 of
   `render.pedal`), the other chords keep it down (80); chords followed by a rest, or
   staccato, are played without it (0). No soft pedal.
"""
from __future__ import annotations

import numpy as np

from render.encoding import RANGES, RENDERED_DTYPE, onset_groups
from render.score import Score

GRACE_SEC = 0.06
LEAD_SEC = 0.025
DEFAULT_VELOCITY = 64
ACCENTS = ("sf", "sfz", "sffz", "fz", "rfz", "fp", "sfp")
FP_LEVEL = 49  # the piano after fp


def deadpan(score: Score, *, tempo_bpm: float | None = None,
            velocity: int | None = None) -> np.ndarray:
    """Play the score as written.

    Parameters
    ----------
    score : Score
    tempo_bpm : float, optional
        Base tempo (quarters/min). Tempo marks are scaled so that the first one equals it;
        without marks it is the tempo throughout. Default: the written tempo, else
        the tempo predicted from the score (`render.tempo`).
    velocity : int, optional
        One velocity for every note. Default: the written dynamics, 64 where none.

    Returns
    -------
    np.ndarray
        RENDERED_DTYPE, shape (N,), in score order.
    """
    n = score.notes
    bpm_per_note = _written_bpm(score, tempo_bpm)
    b, s, bpm = _tempo_map(score, tempo_bpm)
    onset = _beat_to_sec(n["onset_beat"], b, s, bpm)
    dur = _beat_to_sec(n["onset_beat"] + n["duration_beat"], b, s, bpm) - onset
    vel = (np.full(len(n), velocity, float) if velocity is not None
           else np.where(n["velocity_written"] > 0, n["velocity_written"], DEFAULT_VELOCITY))
    onset, dur = _place_grace(n, onset, dur)
    ideal = _beat_to_sec(n["onset_beat"], b, s, bpm)
    return _assemble(score, onset, dur, vel, bpm_per_note, ideal, bpm_per_note)


def humanize(score: Score, *, seed: int = 0, tempo_bpm: float | None = None,
             amount: float = 1.0, phrase_tempo: float = 0.12, phrase_velocity: float = 14.0,
             final_tempo: float = 0.5, ritard_curvature: float = 3.0,
             jitter_sec: float = 0.006, jitter_velocity: float = 2.5, pedal: bool = True) -> np.ndarray:
    """A rule-based expressive performance (see the module docstring for the rules).

    Parameters
    ----------
    score : Score
    seed : int
        Seed of the random jitter; the same seed gives the same performance.
    tempo_bpm : float, optional
        Base tempo as in `deadpan`.
    amount : float
        Scales every rule (0 gives deadpan timing with shaped dynamics removed).
    phrase_tempo : float
        Peak-to-edge tempo change of a 4-bar phrase arch, as a fraction of the tempo.
    phrase_velocity : float
        Peak-to-edge velocity change of a 4-bar phrase arch, MIDI velocity steps.
    final_tempo, ritard_curvature : float
        w and q of the final ritardando model.
    jitter_sec, jitter_velocity : float
        Standard deviations of the random onset (s) and velocity jitter.
    pedal : bool
        Apply the pedal rule (else no pedal).

    Returns
    -------
    np.ndarray
        RENDERED_DTYPE, shape (N,), in score order.
    """
    rng = np.random.default_rng(seed)
    n = score.notes
    N = len(n)
    written = _written_bpm(score, tempo_bpm)
    grp, first = onset_groups(n["onset_beat"])
    u = n["onset_beat"][first]
    G = len(u)

    # Tempo per onset group: written x phrase arches x final ritardando.
    bar_len = np.median(n["bar_duration_beat"][n["bar_duration_beat"] > 0]) \
        if np.any(n["bar_duration_beat"] > 0) else 4.0
    arch = _phrase_arch(u, n, bar_len)
    rit = _final_ritard(u, n, bar_len, final_tempo, ritard_curvature)
    tempo_g = written[first] * (1.0 + amount * phrase_tempo * arch) \
        * (1.0 + amount * (rit - 1.0))
    ideal_g = np.concatenate([[0.0], np.cumsum(np.diff(u) * 60.0 / tempo_g[:-1])])
    end_beat = float(np.max(n["onset_beat"] + n["duration_beat"]))
    xs = np.append(u, max(end_beat, u[-1]) + 1.0)
    ys = np.append(ideal_g, ideal_g[-1] + (xs[-1] - u[-1]) * 60.0 / tempo_g[-1])
    ideal = ideal_g[grp]
    dur = np.interp(n["onset_beat"] + n["duration_beat"], xs, ys) - ideal

    # Dynamics: written (with crescendo shaping), phrase arch, high loud.
    vel = _shaped_dynamics(score, bar_len)
    vel = vel + amount * (phrase_velocity * arch[grp] + 0.15 * (n["pitch"] - 60.0).clip(-24, None))

    # Melody lead: the top note of the upper staff in each chord.
    top = _melody_notes(n, grp, G)
    chord = np.bincount(grp, minlength=G)[grp] > 1
    onset = ideal - amount * LEAD_SEC * (top & chord)
    vel = vel + amount * 10.0 * top

    # Duration contrast on notes shorter than 0.6 s.
    short = np.clip((0.6 - dur) / 0.6, 0.0, 1.0) * (dur > 0)
    dur = dur * (1.0 - amount * 0.2 * short)
    vel = vel - amount * 4.0 * short

    onset = onset + amount * rng.normal(0.0, jitter_sec, N)
    vel = vel + amount * rng.normal(0.0, jitter_velocity, N)
    onset, dur = _place_grace(n, onset, dur)
    vel = np.where(n["is_grace"], vel - 6.0, vel)
    out = _assemble(score, onset, dur, vel, tempo_g[grp], ideal, written)
    if pedal:
        out["sustain"] = pedal_rule(score)
    return out


def pedal_rule(score: Score) -> np.ndarray:
    """The humanizer's sustain pedal class per note (rule 8 of the module docstring), (N,)."""
    n = score.notes
    if len(n) == 0:
        return np.zeros(0, np.int64)
    grp, first = onset_groups(n["onset_beat"])
    G = len(first)
    u = n["onset_beat"][first]
    beat = np.floor(u + 1e-6).astype(np.int64)
    _, beat_id = np.unique(beat, return_inverse=True)
    # the bass of a beat: the lowest note sounding in it (struck there or held into it)
    ub = np.unique(beat)
    real = ~n["is_grace"]
    b0 = np.floor(n["onset_beat"][real] + 1e-6).astype(np.int64)
    b1 = np.maximum(np.ceil(n["onset_beat"][real] + n["duration_beat"][real] - 1e-6).astype(np.int64), b0 + 1)
    span = np.minimum(b1 - b0, 64)
    cover = np.repeat(b0, span) + (np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span))
    k = np.searchsorted(ub, cover)
    ok = (k < len(ub)) & (ub[np.minimum(k, len(ub) - 1)] == cover)
    bass_b = np.full(len(ub), 10_000)
    np.minimum.at(bass_b, k[ok], np.repeat(n["pitch"][real], span)[ok])
    beat_first = np.r_[True, beat_id[1:] != beat_id[:-1]]
    new_bass = beat_first & np.r_[True, bass_b[beat_id][1:] != bass_b[beat_id][:-1]]
    cls = np.where(new_bass, 26, 80)
    cls[0] = 80                                     # down from the first chord
    end_g = np.zeros(G)
    np.maximum.at(end_g, grp, n["onset_beat"] + n["duration_beat"])
    rest_after = np.r_[end_g[:-1] < u[1:] - 1e-6, False]
    staccato = np.zeros(G, bool)
    np.logical_or.at(staccato, grp, np.isin(score.marks["artic"], (1, 2)) if score.marks is not None else False)
    cls[rest_after | staccato] = 0
    return cls[grp]


# --- rules -----------------------------------------------------------------------------------

def _phrase_arch(u, n, bar_len):
    """Todd-style arch per onset group, two levels, each in [-0.5, 0.5]; shape (G,)."""
    pos = u - _first_full_bar(n, bar_len)
    bars_per_phrase = 4 if bar_len >= 3 else 8
    out = np.zeros(len(u))
    for bars, weight in ((bars_per_phrase, 1.0), (2 * bars_per_phrase, 0.6)):
        span = bars * bar_len
        x = np.where(pos < 0, 0.0, (pos % span) / span)
        out += weight * (_arch_shape(x) - 0.5)
    return out / 1.6


def _arch_shape(x, turn=0.4):
    """0 at the phrase ends, 1 at ``turn``: sin(pi * x^k) with turn^k = 1/2."""
    k = np.log(0.5) / np.log(turn)
    return np.sin(np.pi * np.power(x, k))


def _first_full_bar(n, bar_len):
    """Beat where the first full bar starts (after an anacrusis)."""
    bars = np.unique(n["bar_onset_beat"])
    if len(bars) > 1 and bars[1] - bars[0] < 0.99 * bar_len:
        return float(bars[1])
    return float(bars[0])


def _final_ritard(u, n, bar_len, w, q):
    """Friberg & Sundberg's final ritardando over the last two bars; tempo factor (G,)."""
    end = u[-1]
    length = max(2.0 * bar_len, 2.0)
    start = end - length
    x = np.clip((u - start) / length, 0.0, 1.0)
    return np.power(1.0 + (w ** q - 1.0) * x, 1.0 / q)


def _shaped_dynamics(score, bar_len):
    """Velocity per note from the dynamics marks, shape (N,).

    Levels (p, mf, f ...) hold until the next level; accents (sf, sfz, fz, rfz, fp) only
    raise the notes at their onset (fp then continues piano). A level that held for two
    bars or more goes into a louder one through a one-bar crescendo.
    """
    n = score.notes
    on = n["onset_beat"]
    marks = score.dynamics_marks
    if len(marks) == 0:
        return np.where(n["velocity_written"] > 0, n["velocity_written"],
                        DEFAULT_VELOCITY).astype(float)
    text = np.char.lower(marks["text"].astype(str))
    accent = np.isin(text, list(ACCENTS))
    lv_on = marks["onset_beat"][~accent]
    lv_vel = marks["velocity"][~accent].astype(float)
    fp = text == "fp"  # forte-piano: the level after it is piano
    lv_on = np.concatenate([lv_on, marks["onset_beat"][fp]])
    lv_vel = np.concatenate([lv_vel, np.full(fp.sum(), FP_LEVEL)])
    order = np.argsort(lv_on, kind="stable")
    lv_on, lv_vel = lv_on[order], lv_vel[order]
    k = np.searchsorted(lv_on, on + 1e-9, side="right") - 1
    vel = np.where(k >= 0, lv_vel[np.maximum(k, 0)], DEFAULT_VELOCITY)
    prev_on, prev_v = -np.inf, float(DEFAULT_VELOCITY)
    for m_on, m_v in zip(lv_on, lv_vel):
        if m_v > prev_v and m_on - prev_on >= 2 * bar_len:
            ramp = (on >= m_on - bar_len) & (on < m_on)
            frac = (on[ramp] - (m_on - bar_len)) / bar_len
            vel[ramp] = np.maximum(vel[ramp], prev_v + frac * (m_v - prev_v))
        prev_on, prev_v = m_on, m_v
    for m_on, m_v in zip(marks["onset_beat"][accent], marks["velocity"][accent]):
        at = np.abs(on - m_on) < 1e-6
        vel[at] = np.maximum(vel[at], m_v)
    return vel


def _melody_notes(n, grp, G):
    """Boolean (N,): the highest non-grace note of the upper staff in each onset group."""
    staff = np.where(n["staff"] > 0, n["staff"], 1)
    upper = staff == staff.min()
    ok = upper & ~n["is_grace"]
    key = np.where(ok, n["pitch"].astype(int), -1)
    best = np.full(G, -1)
    np.maximum.at(best, grp, key)
    top = ok & (key == best[grp])
    # one note per group even with a doubled pitch (unison in two voices)
    idx = np.flatnonzero(top)
    dup = np.zeros(len(n), bool)
    dup[idx[1:][grp[idx[1:]] == grp[idx[:-1]]]] = True
    return top & ~dup


# --- shared ----------------------------------------------------------------------------------

def _written_bpm(score, tempo_bpm):
    """Written tempo per note (quarters/min), scaled to ``tempo_bpm`` if given; shape (N,)."""
    w = score.notes["tempo_bpm"].astype(float)
    have = np.isfinite(w) & (w > 0)
    if tempo_bpm is not None:
        first = score.written_tempo_bpm
        w = w * (tempo_bpm / first) if first else w
        return np.where(have, w, float(tempo_bpm))
    if have.any():  # notes before the first mark take the first mark
        return np.where(have, w, w[np.argmax(have)])
    from render.tempo import predict_tempo_bpm
    return np.full(len(w), predict_tempo_bpm(score.notes))


def _tempo_map(score, tempo_bpm):
    """Breakpoints (beats), their times (s) and the tempo from each one (bpm)."""
    start = float(score.notes["onset_beat"][0])
    marks = score.tempo_marks
    if len(marks) == 0:
        b = np.array([start])
        from render.tempo import predict_tempo_bpm
        bpm = np.array([float(tempo_bpm or predict_tempo_bpm(score.notes))])
    else:
        scale = tempo_bpm / float(marks["bpm"][0]) if tempo_bpm else 1.0
        b = marks["onset_beat"].astype(float)
        bpm = marks["bpm"].astype(float) * scale
        if b[0] > start:
            b, bpm = np.concatenate([[start], b]), np.concatenate([[bpm[0]], bpm])
    s = np.concatenate([[0.0], np.cumsum(np.diff(b) * 60.0 / bpm[:-1])])
    return b, s, bpm


def _beat_to_sec(beats, b, s, bpm):
    k = np.clip(np.searchsorted(b, beats + 1e-9, side="right") - 1, 0, None)
    return s[k] + (beats - b[k]) * 60.0 / bpm[k]


def _place_grace(n, onset, dur):
    """Grace notes: ``GRACE_SEC`` each, in a row ending where their main note starts."""
    g = np.flatnonzero(n["is_grace"])
    if len(g) == 0:
        return onset, dur
    onset, dur = onset.copy(), dur.copy()
    on = n["onset_beat"][g]
    new = np.ones(len(g), bool)
    new[1:] = np.diff(on) > 1e-9
    gid = np.cumsum(new) - 1
    count = np.bincount(gid)
    rank = np.arange(len(g)) - np.flatnonzero(new)[gid]
    # the main note's time: the earliest non-grace onset at that score position
    grp, first = onset_groups(n["onset_beat"])
    gmin = np.full(len(first), np.inf)
    np.minimum.at(gmin, grp, np.where(n["is_grace"], np.inf, onset))
    main_t = gmin[grp[g]]
    main_t = np.where(np.isfinite(main_t), main_t, onset[g])
    onset[g] = main_t - (count[gid] - rank) * GRACE_SEC
    dur[g] = GRACE_SEC
    return onset, dur


def _assemble(score, onset, dur, vel, tempo, ideal, written):
    n = score.notes
    out = np.zeros(len(n), RENDERED_DTYPE)
    shift = float(onset.min())
    out["id"] = n["id"]
    out["pitch"] = n["pitch"]
    out["onset_sec"] = onset - shift
    out["duration_sec"] = np.maximum(dur, 0.01)
    out["velocity"] = np.clip(np.rint(vel), 1, 127)
    out["tempo_bpm"] = tempo
    beat_sec = 60.0 / tempo
    out["duration_100"] = np.clip(np.rint(out["duration_sec"] / beat_sec * 100),
                                  *RANGES["duration_100"])
    out["deviation_100"] = np.clip(np.rint((onset - ideal) / beat_sec * 100),
                                   *RANGES["deviation_100"])
    out["tempo_log_50"] = np.clip(np.rint(50.0 * np.log2(tempo / written)), *RANGES["tempo_log_50"])
    return out
