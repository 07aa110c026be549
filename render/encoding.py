"""The paper's performance representation (section 3.1), both directions.

Per score note n (notes sorted by onset, then pitch):

- ``velocity``       1..127, the MIDI velocity;
- ``duration_100``   1..800, the performed duration in 1/100 beat at the current tempo;
- ``deviation_100``  -50..49, the onset in 1/100 beat after the ideal onset that the tempo
  curve implies;
- ``tempo_dev_bpm``  -50..49, the local tempo minus the written tempo, quarter notes per minute.

The local tempo is the slope of a Gaussian-process regression (squared-exponential kernel,
FWHM 2 beats) of performed time on score position. Decoding integrates the tempo from one
score onset to the next (left Riemann sum, the way a streaming renderer must), so the encoder
picks each group's integer tempo by error feedback against the GP curve (sigma-delta): the
ideal onsets of the decoder then follow the GP curve with no drift, and decoding inverts
encoding up to the 1/100-beat quantisation of the deviation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from render.performance import PERF_NOTE_DTYPE, AlignedPerformance

ENCODED_DTYPE = np.dtype([
    ("velocity", "i2"), ("duration_100", "i2"), ("deviation_100", "i2"), ("tempo_dev_bpm", "i2"),
])
RENDERED_DTYPE = np.dtype(PERF_NOTE_DTYPE.descr + [
    ("tempo_bpm", "f4"), ("duration_100", "i2"), ("deviation_100", "i2"), ("tempo_dev_bpm", "i2"),
])
RANGES = {"velocity": (1, 127), "duration_100": (1, 800), "deviation_100": (-50, 49),
          "tempo_dev_bpm": (-50, 49)}
MIN_TEMPO_BPM = 10.0
MAX_TEMPO_BPM = 800.0  # quarter notes: a Presto in 3/4 reaches 400
GP_FWHM_BEAT = 2.0
GP_LENGTHSCALE_BEAT = GP_FWHM_BEAT / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 0.849 beats
GP_NOISE_SEC = 0.04


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
                   margin_beat: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-process regression of performed time on score position.

    A local linear trend is fitted in each window and the GP (squared-exponential kernel,
    FWHM ``GP_FWHM_BEAT``) models the residual; windows of ``block`` points see their
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
    ell2 = GP_LENGTHSCALE_BEAT ** 2
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


def local_tempo_reference(onset_beat: np.ndarray, onset_sec: np.ndarray, *, window_beat: float = 8.0,
                          step_bpm: float = 10.0, is_grace: np.ndarray | None = None) -> np.ndarray:
    """A slowly varying reference tempo of a performance, per note (bpm), shape (N,).

    The running median, over ``window_beat`` beats (two bars of 4/4), of the GP tempo curve, rounded to ``step_bpm``.
    Training uses it as the written tempo where the score has no trustworthy metronome mark:
    one median for a whole piece puts the sections of a Largo-Allegro movement, or the rubato of
    a Presto, outside the +-50 bpm range of the tempo classes, and clipped tempo makes the ideal
    onsets drift so far that every micro-deviation clips too.
    """
    grace = np.zeros(len(onset_beat), bool) if is_grace is None else np.asarray(is_grace, bool)
    grp, first = onset_groups(onset_beat)
    w = (~grace).astype(float) + 1e-6
    t_group = np.bincount(grp, onset_sec * w, len(first)) / np.bincount(grp, w, len(first))
    u = onset_beat[first]
    if len(u) < 3:
        return np.full(len(onset_beat), median_tempo_rounded(onset_beat, onset_sec))
    _, slope = gp_tempo_curve(u, t_group)
    bpm = 60.0 / np.maximum(slope, 60.0 / MAX_TEMPO_BPM)
    lo = np.searchsorted(u, u - window_beat / 2)
    hi = np.searchsorted(u, u + window_beat / 2, side="right")
    ref = np.array([np.median(bpm[a:b]) for a, b in zip(lo, hi)])
    ref = np.clip(step_bpm * np.round(ref / step_bpm), 30.0, MAX_TEMPO_BPM)
    return ref[grp]


@dataclass
class EncodeReport:
    n_notes: int
    clip_rate: dict

    def as_dict(self) -> dict:
        return {"n_notes": self.n_notes, "clip_rate": self.clip_rate}


def encode(onset_beat: np.ndarray, written_bpm: np.ndarray, onset_sec: np.ndarray,
           duration_sec: np.ndarray, velocity: np.ndarray, is_grace: np.ndarray | None = None,
           ) -> tuple[np.ndarray, float, EncodeReport]:
    """Encode performed notes into the paper's representation.

    Parameters
    ----------
    onset_beat : (N,) score onsets of the performed notes, beats, non-decreasing.
    written_bpm : (N,) written tempo per note, quarter notes per minute.
    onset_sec, duration_sec, velocity : (N,) the performance of each note.
    is_grace : (N,) grace notes, left out of the tempo curve fit.

    Returns
    -------
    encoded : (N,) ENCODED_DTYPE.
    start_sec : the ideal onset of the first note (decoded onsets are relative to it).
    report : clip rates per parameter.
    """
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
    mean, slope = gp_tempo_curve(u, t_group)
    w_group = written_bpm[first]
    lo, hi = RANGES["tempo_dev_bpm"]
    slope_bpm = 60.0 / np.maximum(slope, 60.0 / MAX_TEMPO_BPM)

    # Sigma-delta: choose each group's integer tempo so that the decoder's ideal onset of the
    # next group lands on the GP mean; clipping errors are corrected by the following groups.
    tempo = np.empty(n_groups)
    ideal = np.empty(n_groups)
    ideal[0] = mean[0]
    for k in range(n_groups):
        if k + 1 < n_groups:
            du = u[k + 1] - u[k]
            remaining = mean[k + 1] - ideal[k]
            want = 60.0 * du / remaining if remaining > 1e-4 else 1e9
            want = min(max(want, 0.6 * slope_bpm[k]), 1.6 * slope_bpm[k])
        else:
            want = slope_bpm[k]
        dev = np.clip(np.round(want - w_group[k]), lo, hi)
        tempo[k] = max(w_group[k] + dev, MIN_TEMPO_BPM)
        if k + 1 < n_groups:
            ideal[k + 1] = ideal[k] + (u[k + 1] - u[k]) * 60.0 / tempo[k]
    tempo_dev_raw = slope_bpm - w_group  # for the clip report: the curve itself, not the dither

    beat_sec = 60.0 / tempo[grp]  # seconds per beat for each note
    enc = np.zeros(n, ENCODED_DTYPE)
    raw = {
        "velocity": np.asarray(velocity, float),
        "duration_100": np.round(duration_sec / beat_sec * 100.0),
        "deviation_100": np.round((onset_sec - ideal[grp]) / beat_sec * 100.0),
        "tempo_dev_bpm": np.round(tempo - w_group)[grp],
    }
    clip = {}
    for name, (a, b) in RANGES.items():
        v = raw[name]
        check = tempo_dev_raw[grp] if name == "tempo_dev_bpm" else v
        clip[name] = float(np.mean((check < a) | (check > b)))
        enc[name] = np.clip(v, a, b)
    return enc, float(ideal[0]), EncodeReport(n_notes=n, clip_rate=clip)


@dataclass
class DecodeState:
    """Where a streaming decode stands: the last onset group seen."""
    onset_beat: float
    ideal_sec: float
    tempo_bpm: float


def decode(onset_beat: np.ndarray, written_bpm: np.ndarray, encoded: np.ndarray,
           state: DecodeState | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, DecodeState]:
    """Decode the paper's representation into timed notes; chunk by chunk if ``state`` is given.

    A group's tempo is that of its first note (known as soon as the group starts, so chunks
    can be decoded as they stream); the ideal onset advances by the previous group's tempo.

    Parameters
    ----------
    onset_beat, written_bpm : (N,) score onsets (beats) and written tempo (bpm) of the notes.
    encoded : (N,) ENCODED_DTYPE (or any array with those fields).
    state : the state returned for the previous chunk, or None at the start (first onset at 0 s).

    Returns
    -------
    onset_sec, duration_sec, tempo_bpm : (N,) arrays.
    state : the state after this chunk.
    """
    onset_beat = np.asarray(onset_beat, float)
    grp, first = onset_groups(onset_beat)
    tempo_first = np.maximum(written_bpm[first] + encoded["tempo_dev_bpm"][first], MIN_TEMPO_BPM)
    u = onset_beat[first]
    cont = state is not None and abs(u[0] - state.onset_beat) < 1e-9
    if state is None:
        prev_u, prev_t, prev_tempo = u[0], 0.0, tempo_first[0]
    else:
        prev_u, prev_t, prev_tempo = state.onset_beat, state.ideal_sec, state.tempo_bpm
    if cont:  # the chunk continues the previous chunk's last group
        tempo_first[0] = prev_tempo
    tempos = np.concatenate([[prev_tempo], tempo_first])
    us = np.concatenate([[prev_u], u])
    ideal = prev_t + np.concatenate([[0.0], np.cumsum(np.diff(us) * 60.0 / tempos[:-1])])[1:]
    tempo_n = tempo_first[grp]
    beat_sec = 60.0 / tempo_n
    onset = ideal[grp] + encoded["deviation_100"] / 100.0 * beat_sec
    duration = encoded["duration_100"] / 100.0 * beat_sec
    return onset, duration, tempo_n, DecodeState(float(u[-1]), float(ideal[-1]), float(tempo_first[-1]))


def encode_aligned(perf: AlignedPerformance) -> tuple[np.ndarray, np.ndarray, float, float, EncodeReport]:
    """Encode the matched notes of an aligned performance.

    Returns
    -------
    index : (M,) indices of the matched score notes (into ``perf.score.notes``).
    encoded : (M,) ENCODED_DTYPE.
    written_bpm : the fallback written tempo used where the score has no marking.
    start_sec : the ideal onset of the first matched note, seconds.
    report : clip rates.
    """
    idx = np.flatnonzero(perf.matched)
    notes = perf.score.notes[idx]
    played = perf.notes[perf.match_index[idx]]
    fallback = median_tempo_rounded(notes["onset_beat"], played["onset_sec"])
    w = written_tempo(notes, fallback)
    enc, start, report = encode(notes["onset_beat"], w, played["onset_sec"], played["duration_sec"],
                                played["velocity"], notes["is_grace"])
    return idx, enc, fallback, start, report


def roundtrip_report(match_path) -> dict:
    """Encode a human performance, decode it, and measure how far the notes moved.

    Returns a JSON-able dict: note count, onset error median / p95 / max (ms, after aligning
    the first ideal onset), duration error median (ms), velocity exact rate, clip rates.
    """
    from render.performance import load_aligned

    perf = load_aligned(match_path)
    idx, enc, fallback, start, report = encode_aligned(perf)
    notes = perf.score.notes[idx]
    played = perf.notes[perf.match_index[idx]]
    w = written_tempo(notes, fallback)
    onset, duration, _, _ = decode(notes["onset_beat"], w, enc)
    err = np.abs(onset + start - played["onset_sec"]) * 1000.0
    derr = np.abs(duration - played["duration_sec"]) * 1000.0
    return {
        "file": str(match_path), "n_notes": int(len(idx)),
        "onset_err_median_ms": float(np.median(err)), "onset_err_p95_ms": float(np.percentile(err, 95)),
        "onset_err_max_ms": float(err.max()), "duration_err_median_ms": float(np.median(derr)),
        "velocity_exact_rate": float(np.mean(enc["velocity"] == played["velocity"])),
        "written_tempo_fallback_bpm": fallback, "clip_rate": report.clip_rate,
    }
