"""The paper's performance representation (section 3.1), both directions.

Per score note n (notes sorted by onset, then pitch):

- ``velocity``       1..127, the MIDI velocity;
- ``duration_100``   1..800, the performed duration in 1/100 beat at the current tempo;
- ``deviation_100``  -50..49, the onset in 1/100 beat after the ideal onset that the tempo
  curve implies;
- ``tempo_log_50``   -50..49, the beat's tempo as a log ratio to the reference tempo, in 1/50
  octave (model v2, DESIGN 4.1): tempo = reference * 2 ** (tempo_log_50 / 50), so -50 is half
  the reference speed and +49 nearly double. The reference is g * W: W the marked tempo of the
  section, g one scalar per performance (the pianist's overall speed); arcs and ritardandi are
  in the target. One tempo per beat (quarter note): only the first note of a beat carries it,
  the other notes of the beat repeat it (the model's loss reads it once per beat).
- ``sustain``        0..80, the sustain pedal over the interval to the next onset (render.pedal);
- ``soft``           0..1, the soft pedal at the onset.

The local tempo is the slope of a Gaussian-process regression (squared-exponential kernel,
FWHM ``TEMPO_FWHM_BEAT`` = 6 beats since model v2.1, 2 before) of performed time on score
position; the timing it smooths away is in the deviation. Decoding integrates the tempo from one
score onset to the next (left Riemann sum, the way a streaming renderer must), so the encoder
picks each beat's tempo class by error feedback against the GP curve (sigma-delta): the ideal
onsets of the decoder then follow the GP curve with no drift, and decoding inverts encoding up
to the 1/100-beat quantisation of the deviation (and the +-1 octave range of the tempo).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from render.performance import PERF_NOTE_DTYPE, AlignedPerformance

ENCODED_DTYPE = np.dtype([
    ("velocity", "i2"), ("duration_100", "i2"), ("deviation_100", "i2"), ("tempo_log_50", "i2"),
    ("sustain", "i2"), ("soft", "i2"),
])
RENDERED_DTYPE = np.dtype(PERF_NOTE_DTYPE.descr + [
    ("tempo_bpm", "f4"), ("duration_100", "i2"), ("deviation_100", "i2"), ("tempo_log_50", "i2"),
    ("sustain", "i2"), ("soft", "i2"),
])
RANGES = {"velocity": (1, 127), "duration_100": (1, 800), "deviation_100": (-50, 49),
          "tempo_log_50": (-50, 49), "sustain": (0, 80), "soft": (0, 1)}
TEMPO_STEPS_PER_OCTAVE = 50.0
MIN_TEMPO_BPM = 10.0
MAX_TEMPO_BPM = 800.0  # quarter notes: a Presto in 3/4 reaches 400
GP_FWHM_BEAT = 2.0
GP_LENGTHSCALE_BEAT = GP_FWHM_BEAT / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 0.849 beats
GP_NOISE_SEC = 0.04
# The tempo target's smoothness (model v2.1): a GP of FWHM 6 beats keeps arcs and ritardandi in the
# tempo and leaves beat-to-beat timing to the onset deviation. At 2 beats the per-beat target was
# nearly white (lag-1 autocorrelation .06 on real performances), which a model that sees its past
# only through z cannot follow; at 6 it is .82 and the deviation's spread grows from 8.2 to 9.0.
TEMPO_FWHM_BEAT = 6.0


def onset_groups(onset_beat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group notes that share a score onset.

    Returns
    -------
    group : np.ndarray
        int64, shape (N,): group index of each note (0..G-1), non-decreasing.
    first : np.ndarray
        int64, shape (G,): index of each group's first note.
    """
    new = np.ones(len(onset_beat), bool)
    new[1:] = np.diff(onset_beat) > 1e-9
    return np.cumsum(new) - 1, np.flatnonzero(new)


def gp_tempo_curve(x_beat: np.ndarray, t_sec: np.ndarray, *, block: int = 256,
                   margin_beat: float = 8.0, fwhm_beat: float = GP_FWHM_BEAT,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-process regression of performed time on score position.

    A local linear trend is fitted in each window and the GP (squared-exponential kernel,
    FWHM ``fwhm_beat``, default ``GP_FWHM_BEAT``) models the residual; windows of ``block`` points see their
    neighbours within ``margin_beat`` so the result is the full GP up to a negligible
    truncation, at linear cost.

    Parameters
    ----------
    x_beat : (G,) strictly increasing score positions, beats.
    t_sec : (G,) performed times, seconds.

    Returns
    -------
    mean_sec : (G,) posterior mean of the performed time at ``x_beat``.
    slope_sec_per_beat : (G,) its derivative (60 / local tempo in bpm).
    """
    x = np.asarray(x_beat, float)
    t = np.asarray(t_sec, float)
    g = len(x)
    mean, slope = np.empty(g), np.empty(g)
    if g == 1:
        return t.copy(), np.array([0.6])
    ell2 = (fwhm_beat / (2.0 * np.sqrt(2.0 * np.log(2.0)))) ** 2
    margin_beat = max(margin_beat, 4.0 * fwhm_beat)
    for i0 in range(0, g, block):
        i1 = min(g, i0 + block)
        j0 = np.searchsorted(x, x[i0] - margin_beat)
        j1 = np.searchsorted(x, x[i1 - 1] + margin_beat, side="right")
        xw, tw = x[j0:j1], t[j0:j1]
        a, b = np.polyfit(xw - xw[0], tw, 1) if len(xw) > 1 else (0.6, tw[0])
        r = tw - (a * (xw - xw[0]) + b)
        sf2 = max(float(np.var(r)), 0.05 ** 2)
        d = xw[:, None] - xw[None, :]
        k = sf2 * np.exp(-0.5 * d * d / ell2)
        alpha = np.linalg.solve(k + GP_NOISE_SEC ** 2 * np.eye(len(xw)), r)
        xs = x[i0:i1]
        ds = xs[:, None] - xw[None, :]
        ks = sf2 * np.exp(-0.5 * ds * ds / ell2)
        mean[i0:i1] = a * (xs - xw[0]) + b + ks @ alpha
        slope[i0:i1] = a + (ks * (-ds / ell2)) @ alpha
    return mean, slope


def written_tempo(notes: np.ndarray, fallback_bpm: float) -> np.ndarray:
    """Written tempo per note (bpm): the marking in force, else ``fallback_bpm``; shape (N,)."""
    w = notes["tempo_bpm"].astype(float)
    return np.where(np.isfinite(w) & (w > 0), w, fallback_bpm)


def median_tempo_rounded(onset_beat: np.ndarray, onset_sec: np.ndarray) -> float:
    """The performance's median tempo rounded to 30 bpm (the written tempo of unmarked scores)."""
    grp, first = onset_groups(onset_beat)
    u, t = onset_beat[first], np.array([onset_sec[grp == k].mean() for k in range(len(first))])
    dt, du = np.diff(t), np.diff(u)
    ok = (dt > 1e-3) & (du > 1e-6)
    if not ok.any():
        return 120.0
    return float(max(30.0, 30.0 * np.round(np.median(60.0 * du[ok] / dt[ok]) / 30.0)))


@dataclass
class EncodeReport:
    n_notes: int
    clip_rate: dict

    def as_dict(self) -> dict:
        return {"n_notes": self.n_notes, "clip_rate": self.clip_rate}


def beat_starts(u_beat: np.ndarray, prev_u: float | None = None) -> np.ndarray:
    """(G,) bool: which onset groups (score positions ``u_beat``, increasing) start a new beat
    (quarter note), given the previous group's position ``prev_u`` (None: the first starts one)."""
    b = np.floor(np.asarray(u_beat, float) + 1e-6)
    prev = np.concatenate([[np.nan if prev_u is None else np.floor(prev_u + 1e-6)], b[:-1]])
    return b != prev


def tempo_ratio(onset_beat: np.ndarray, onset_sec: np.ndarray, reference_bpm: np.ndarray,
                is_grace: np.ndarray | None = None) -> float:
    """g: a performance's overall speed relative to ``reference_bpm`` (N,) (the marked tempo):
    the median over the performance of the ratio of its local (GP) tempo to the marking."""
    grace = np.zeros(len(onset_beat), bool) if is_grace is None else np.asarray(is_grace, bool)
    grp, first = onset_groups(onset_beat)
    if len(first) < 3:
        return 1.0
    w = (~grace).astype(float) + 1e-6
    t_group = np.bincount(grp, onset_sec * w, len(first)) / np.bincount(grp, w, len(first))
    _, slope = gp_tempo_curve(onset_beat[first], t_group)
    bpm = 60.0 / np.maximum(slope, 60.0 / MAX_TEMPO_BPM)
    return float(np.clip(np.median(bpm / np.asarray(reference_bpm, float)[first]), 0.1, 10.0))


def encode(onset_beat: np.ndarray, reference_bpm: np.ndarray, onset_sec: np.ndarray,
           duration_sec: np.ndarray, velocity: np.ndarray, is_grace: np.ndarray | None = None,
           pedal: np.ndarray | None = None, *, tempo_fwhm_beat: float | None = None,
           ) -> tuple[np.ndarray, float, EncodeReport]:
    """Encode performed notes into the model's representation (see the module docstring).

    Parameters
    ----------
    onset_beat : (N,) score onsets of the performed notes, beats, non-decreasing.
    reference_bpm : (N,) reference tempo per note (g * W), quarter notes per minute.
    onset_sec, duration_sec, velocity : (N,) the performance of each note.
    is_grace : (N,) grace notes, left out of the tempo curve fit.
    pedal : PEDAL_DTYPE events of the performance (sustain and soft), or None (no pedal).
    tempo_fwhm_beat : smoothness of the tempo curve the beat tempi follow (beats), default
        ``TEMPO_FWHM_BEAT``; what it leaves out goes into the onset deviation.

    Returns
    -------
    encoded : (N,) ENCODED_DTYPE.
    start_sec : the ideal onset of the first note (decoded onsets are relative to it).
    report : clip rates per parameter.
    """
    from render.pedal import encode_pedal

    n = len(onset_beat)
    if n == 0:
        raise ValueError("encode needs at least one note")
    grace = np.zeros(n, bool) if is_grace is None else np.asarray(is_grace, bool)
    grp, first = onset_groups(onset_beat)
    n_groups = len(first)
    # Performed time of each group: mean over its non-grace notes (all notes if only grace).
    w_fit = (~grace).astype(float) + 1e-6
    t_group = np.bincount(grp, onset_sec * w_fit, n_groups) / np.bincount(grp, w_fit, n_groups)
    u = onset_beat[first]
    mean, slope = gp_tempo_curve(u, t_group, fwhm_beat=tempo_fwhm_beat or TEMPO_FWHM_BEAT)
    ref = np.maximum(np.asarray(reference_bpm, float)[first], MIN_TEMPO_BPM)
    lo, hi = RANGES["tempo_log_50"]
    slope_bpm = 60.0 / np.maximum(slope, 60.0 / MAX_TEMPO_BPM)
    starts = np.flatnonzero(beat_starts(u))           # first group of each beat
    bounds = np.append(starts, n_groups)

    # Sigma-delta over beats: choose each beat's tempo class so that the decoder's ideal onset of
    # the next beat lands on the GP mean; quantisation and clipping errors are made up later.
    tempo = np.empty(n_groups)
    cls_group = np.empty(n_groups)
    raw_group = np.empty(n_groups)
    ideal = np.empty(n_groups)
    ideal[0] = mean[0]
    for j in range(len(starts)):
        a, b = bounds[j], bounds[j + 1]
        if b < n_groups:
            du = u[b] - u[a]
            remaining = mean[b] - ideal[a]
            want = 60.0 * du / remaining if remaining > 1e-4 else 1e9
            want = min(max(want, 0.6 * slope_bpm[a]), 1.6 * slope_bpm[a])
        else:
            want = slope_bpm[a]
        raw = TEMPO_STEPS_PER_OCTAVE * np.log2(slope_bpm[a] / ref[a])
        c = float(np.clip(np.round(TEMPO_STEPS_PER_OCTAVE * np.log2(want / ref[a])), lo, hi))
        t = max(ref[a] * 2.0 ** (c / TEMPO_STEPS_PER_OCTAVE), MIN_TEMPO_BPM)
        tempo[a:b], cls_group[a:b], raw_group[a:b] = t, c, raw
        for k in range(a, b):
            if k + 1 < n_groups:
                ideal[k + 1] = ideal[k] + (u[k + 1] - u[k]) * 60.0 / t

    beat_sec = 60.0 / tempo[grp]  # seconds per beat for each note
    enc = np.zeros(n, ENCODED_DTYPE)
    ends = (np.bincount(grp, np.asarray(onset_sec) + np.asarray(duration_sec), n_groups)
            / np.bincount(grp, None, n_groups))
    sus, soft = encode_pedal(t_group, np.maximum(ends, t_group + 0.05), pedal)
    raw = {
        "velocity": np.asarray(velocity, float),
        "duration_100": np.round(duration_sec / beat_sec * 100.0),
        "deviation_100": np.round((onset_sec - ideal[grp]) / beat_sec * 100.0),
        "tempo_log_50": cls_group[grp],
        "sustain": sus[grp].astype(float),
        "soft": soft[grp].astype(float),
    }
    clip = {}
    for name, (a, b) in RANGES.items():
        v = raw[name]
        check = raw_group[grp] if name == "tempo_log_50" else v  # the curve itself, not the dither
        clip[name] = float(np.mean((check < a - 0.5) | (check > b + 0.5)))
        enc[name] = np.clip(v, a, b)
    return enc, float(ideal[0]), EncodeReport(n_notes=n, clip_rate=clip)


@dataclass
class DecodeState:
    """Where a streaming decode stands: the last onset group seen and the tempo in force."""
    onset_beat: float
    ideal_sec: float
    tempo_bpm: float


def decode(onset_beat: np.ndarray, reference_bpm: np.ndarray, encoded: np.ndarray,
           state: DecodeState | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, DecodeState]:
    """Decode the representation into timed notes; chunk by chunk if ``state`` is given.

    A beat's tempo is read from its first note (known as soon as the beat starts, so chunks
    can be decoded as they stream); the other notes of the beat keep it. The ideal onset
    advances by the previous group's tempo.

    Parameters
    ----------
    onset_beat, reference_bpm : (N,) score onsets (beats) and reference tempo (bpm) of the notes.
    encoded : (N,) ENCODED_DTYPE (or any array with those fields).
    state : the state returned for the previous chunk, or None at the start (first onset at 0 s).

    Returns
    -------
    onset_sec, duration_sec, tempo_bpm : (N,) arrays.
    state : the state after this chunk.
    """
    onset_beat = np.asarray(onset_beat, float)
    grp, first = onset_groups(onset_beat)
    u = onset_beat[first]
    cont = state is not None and abs(u[0] - state.onset_beat) < 1e-9
    new = beat_starts(u, None if state is None else state.onset_beat)
    if cont:  # the chunk continues the previous chunk's last group
        new[0] = False
    cand = np.maximum(np.asarray(reference_bpm, float)[first]
                      * 2.0 ** (encoded["tempo_log_50"][first] / TEMPO_STEPS_PER_OCTAVE), MIN_TEMPO_BPM)
    # Forward-fill the tempo of each beat's first group over the beat.
    idx = np.where(new, np.arange(len(u)), -1)
    np.maximum.accumulate(idx, out=idx)
    carried = state.tempo_bpm if state is not None else cand[0]
    tempo_first = np.where(idx >= 0, cand[np.maximum(idx, 0)], carried)
    if state is None:
        prev_u, prev_t, prev_tempo = u[0], 0.0, tempo_first[0]
    else:
        prev_u, prev_t, prev_tempo = state.onset_beat, state.ideal_sec, state.tempo_bpm
    tempos = np.concatenate([[prev_tempo], tempo_first])
    us = np.concatenate([[prev_u], u])
    ideal = prev_t + np.concatenate([[0.0], np.cumsum(np.diff(us) * 60.0 / tempos[:-1])])[1:]
    tempo_n = tempo_first[grp]
    beat_sec = 60.0 / tempo_n
    onset = ideal[grp] + encoded["deviation_100"] / 100.0 * beat_sec
    duration = encoded["duration_100"] / 100.0 * beat_sec
    return onset, duration, tempo_n, DecodeState(float(u[-1]), float(ideal[-1]), float(tempo_first[-1]))


def encode_aligned(perf: AlignedPerformance, marked_bpm: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, EncodeReport]:
    """Encode the matched notes of an aligned performance, with its pedal.

    Parameters
    ----------
    perf : the aligned performance.
    marked_bpm : (N,) marked tempo W per score note (NaN where none), default the score's own
        tempo marks; unmarked notes get the first mark, or ``DEFAULT_TEMPO_BPM`` without any.

    Returns
    -------
    index : (M,) indices of the matched score notes (into ``perf.score.notes``).
    encoded : (M,) ENCODED_DTYPE.
    reference_bpm : (M,) the reference tempo g * W of each note.
    g : the performance's overall speed relative to the marking.
    start_sec : the ideal onset of the first matched note, seconds.
    report : clip rates.
    """
    idx = np.flatnonzero(perf.matched)
    notes = perf.score.notes[idx]
    played = perf.notes[perf.match_index[idx]]
    w = marked_tempo(perf.score.notes["tempo_bpm"] if marked_bpm is None else marked_bpm)[idx]
    g = tempo_ratio(notes["onset_beat"], played["onset_sec"], w, notes["is_grace"])
    ref = g * w
    enc, start, report = encode(notes["onset_beat"], ref, played["onset_sec"], played["duration_sec"],
                                played["velocity"], notes["is_grace"], pedal=perf.pedal)
    return idx, enc, ref, g, start, report


def marked_tempo(tempo_bpm: np.ndarray, default_bpm: float = 100.0) -> np.ndarray:
    """W per note (bpm): the mark in force; before the first mark the first; no mark: the default."""
    w = np.asarray(tempo_bpm, float)
    known = np.isfinite(w) & (w > 0)
    if not known.any():
        return np.full(len(w), float(default_bpm))
    return np.where(known, w, w[np.argmax(known)])


def roundtrip_report(match_path, perf: AlignedPerformance | None = None) -> dict:
    """Encode a human performance, decode it, and measure how far the notes and pedal moved.

    Returns a JSON-able dict: note count, onset error median / p95 / max (ms, after aligning
    the first ideal onset), duration error median (ms), velocity exact rate, clip rates, and
    for the sustain pedal the agreement of down / not down sampled every 10 ms and the median
    error (ms) of each lift (down -> not down) to the nearest decoded lift.
    """
    from render.pedal import decode_pedal, pedal_down_fraction
    from render.performance import load_aligned

    perf = load_aligned(match_path) if perf is None else perf
    idx, enc, ref, g, start, report = encode_aligned(perf)
    notes = perf.score.notes[idx]
    played = perf.notes[perf.match_index[idx]]
    onset, duration, _, _ = decode(notes["onset_beat"], ref, enc)
    err = np.abs(onset + start - played["onset_sec"]) * 1000.0
    derr = np.abs(duration - played["duration_sec"]) * 1000.0
    out = {
        "file": str(match_path), "n_notes": int(len(idx)),
        "onset_err_median_ms": float(np.median(err)), "onset_err_p95_ms": float(np.percentile(err, 95)),
        "onset_err_max_ms": float(err.max()), "duration_err_median_ms": float(np.median(derr)),
        "velocity_exact_rate": float(np.mean(enc["velocity"] == played["velocity"])),
        "tempo_ratio_g": g, "clip_rate": report.clip_rate,
    }
    # Pedal: decoded on the performed group onsets, so only the pedal encoding is measured.
    grp, first = onset_groups(notes["onset_beat"])
    t_group = np.bincount(grp, played["onset_sec"], len(first)) / np.bincount(grp, None, len(first))
    end = float(np.max(played["onset_sec"] + played["duration_sec"]))
    ev, _ = decode_pedal(t_group, end, enc["sustain"][first], enc["soft"][first])
    grid = np.arange(t_group[0], end, 0.01)
    a = pedal_down_fraction(perf.pedal, grid) >= 0.75
    b = pedal_down_fraction(ev, grid) >= 0.75
    lifts_a = grid[1:][a[:-1] & ~a[1:]]
    lifts_b = grid[1:][b[:-1] & ~b[1:]]
    out["pedal_down_agreement"] = float(np.mean(a == b)) if len(grid) else 1.0
    out["pedal_down_fraction"] = float(np.mean(a)) if len(grid) else 0.0
    if len(lifts_a) and len(lifts_b):
        k = (np.clip(np.searchsorted(lifts_b, lifts_a), 1, len(lifts_b) - 1) if len(lifts_b) > 1
             else np.zeros(len(lifts_a), int))
        near = np.minimum(np.abs(lifts_b[k] - lifts_a), np.abs(lifts_b[np.maximum(k - 1, 0)] - lifts_a))
        out["pedal_lift_err_median_ms"] = float(np.median(near) * 1000.0)
        out["pedal_lift_err_p90_ms"] = float(np.percentile(near, 90) * 1000.0)
    out["pedal_lifts"] = int(len(lifts_a))
    return out
