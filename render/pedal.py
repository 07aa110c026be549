"""Sustain and soft pedal per onset group, in a form a per-note model generates (both directions).

Per onset group k (the notes struck together), with performed onset t_k and the next group's
onset t_{k+1} (for the last group, the end of its notes):

- ``sustain`` 0..80: the sustain pedal over [t_k, t_{k+1}) split into ``SEGMENTS`` (4) equal
  segments, each at one of ``LEVELS`` (3) depths: up (CC64 < 32), half (32..95), down (>= 96).
  A segment's depth is its *lowest* (a lift anywhere in it shows), and the class is
  sum(level_j * 3 ** (3 - j)): 0 = up throughout, 80 = down throughout, 26 = a change (lifted
  in the first quarter, down again after it: the legato pedal at a new harmony).
- ``soft`` 0..1: the soft pedal (CC67 >= 64) at t_k.

Decoding writes CC64 0 / 64 / 127 at the segment starts where the depth changes, and CC67 at the
group onsets where the soft pedal changes. Round trip: a lift or press moves by at most a
quarter of its inter-onset interval (the segment), and short lifts become a segment long.
"""
from __future__ import annotations

import numpy as np

from render.performance import PEDAL_DTYPE

SEGMENTS = 4
LEVELS = 3
N_SUSTAIN = LEVELS ** SEGMENTS  # 81
LEVEL_CC = np.array([0, 64, 127])
SUSTAIN_CC, SOFT_CC = 64, 67
# Per class, its segments' levels and their CC64 values (decoding looks them up: it runs per
# chunk and take while a render streams).
_LEVELS_OF = np.stack([(np.arange(N_SUSTAIN) // LEVELS ** (SEGMENTS - 1 - j)) % LEVELS for j in range(SEGMENTS)], -1)
_CC_OF = LEVEL_CC[_LEVELS_OF]
_SEGMENT_START = np.arange(SEGMENTS) / SEGMENTS


def _level(cc: np.ndarray) -> np.ndarray:
    return np.where(cc >= 96, 2, np.where(cc >= 32, 1, 0))


def _value_at(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Controller value in force at each time t (0 before the first event)."""
    if len(times) == 0:
        return np.zeros(len(t), np.int64)
    k = np.searchsorted(times, t, side="right") - 1
    return np.where(k >= 0, values[np.maximum(k, 0)], 0)


def encode_pedal(group_sec: np.ndarray, end_sec: np.ndarray, pedal: np.ndarray | None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pedal classes per onset group.

    Parameters
    ----------
    group_sec : (G,) performed onset of each group, seconds, non-decreasing.
    end_sec : (G,) end of each group's notes (used for the last group's interval), seconds.
    pedal : PEDAL_DTYPE events (CC64 and CC67), or None for no pedal.

    Returns
    -------
    sustain : (G,) int64 in 0..80; soft : (G,) int64 in 0..1.
    """
    g = len(group_sec)
    if pedal is None or len(pedal) == 0 or g == 0:
        return np.zeros(g, np.int64), np.zeros(g, np.int64)
    pedal = np.sort(pedal, order="time_sec")
    t0 = np.asarray(group_sec, float)
    t1 = np.append(t0[1:], end_sec[-1] if g else 0.0)
    t1 = np.maximum(t1, t0 + 1e-3)
    sus = pedal[pedal["number"] == SUSTAIN_CC]
    st, sv = sus["time_sec"].astype(float), sus["value"].astype(int)
    cls = np.zeros(g, np.int64)
    # Lowest value in each segment: the value at its start, and every event inside it.
    for j in range(SEGMENTS):
        a = t0 + (t1 - t0) * j / SEGMENTS
        b = t0 + (t1 - t0) * (j + 1) / SEGMENTS
        low = _value_at(st, sv, a).astype(int)
        ia = np.searchsorted(st, a, side="right")
        ib = np.searchsorted(st, b, side="left")
        if len(sv):
            # Lowest event inside each segment, one reduceat over all groups (empty ranges -> 999).
            padded = np.append(sv, 999)
            bounds = np.stack([np.minimum(ia, len(sv)), np.minimum(ib, len(sv))], 1).ravel()
            inside = np.minimum.reduceat(padded, bounds)[::2]  # min of padded[ia:ib] where ib > ia
            low = np.minimum(low, np.where(ib > ia, inside, 999))
        cls = cls * LEVELS + _level(low)
    soft = pedal[pedal["number"] == SOFT_CC]
    sf = (_value_at(soft["time_sec"].astype(float), soft["value"].astype(int), t0) >= 64).astype(np.int64)
    return cls, sf


def sustain_levels(cls: np.ndarray) -> np.ndarray:
    """(G,) classes -> (G, SEGMENTS) levels 0..2 (first segment first)."""
    return _LEVELS_OF[np.asarray(cls, np.int64)]


def decode_pedal(group_sec: np.ndarray, end_sec: float, sustain: np.ndarray, soft: np.ndarray,
                 prev: tuple[int, int] = (-1, -1)) -> tuple[np.ndarray, tuple[int, int]]:
    """Pedal events from the classes of consecutive onset groups.

    Parameters
    ----------
    group_sec : (G,) onset of each group, seconds, non-decreasing.
    end_sec : end of the last group's interval (the next group's onset, or its notes' end).
    sustain, soft : (G,) classes from `encode_pedal` (or the model).
    prev : (sustain CC, soft CC) in force before the first group (-1: none sent yet).

    Returns
    -------
    events : PEDAL_DTYPE, sorted by time, only where a value changes.
    prev : the values in force after the last group (pass to the next chunk).
    """
    g = len(group_sec)
    if g == 0:
        return np.zeros(0, PEDAL_DTYPE), prev
    t0 = np.asarray(group_sec, float)
    t1 = np.maximum(np.append(t0[1:], end_sec), t0)
    times = (t0[:, None] + (t1 - t0)[:, None] * _SEGMENT_START).ravel()   # (G * S,) segment starts
    vals = _CC_OF[np.asarray(sustain, np.int64)].ravel()
    last_sus, last_soft = prev
    keep = vals != np.concatenate([[last_sus], vals[:-1]])
    sv = np.where(np.asarray(soft) > 0, 127, 0)
    ks = sv != np.concatenate([[last_soft], sv[:-1]])
    n_sus = int(keep.sum())
    ev = np.zeros(n_sus + int(ks.sum()), PEDAL_DTYPE)   # the sustain's events, then the soft's
    ev["time_sec"] = np.concatenate([times[keep], t0[ks]])
    ev["number"][:n_sus], ev["number"][n_sus:] = SUSTAIN_CC, SOFT_CC
    ev["value"] = np.concatenate([vals[keep], sv[ks]])
    ev = ev[np.argsort(ev["time_sec"], kind="stable")]
    return ev, (int(vals[-1]), int(sv[-1]))


def pedal_down_fraction(events: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sustain depth (0..1, CC64 / 127) in force at times t (seconds)."""
    sus = np.sort(events[events["number"] == SUSTAIN_CC], order="time_sec")
    return _value_at(sus["time_sec"].astype(float), sus["value"].astype(int), np.asarray(t, float)) / 127.0


class PedalStream:
    """Pedal events of one take while its notes arrive in score order, chunk by chunk.

    A group's events need the next group's onset, which is final only once a later group has
    begun (a chord split over two chunks can still start earlier): the last two groups of each
    chunk wait for the next chunk or for `close`. Feeding a take in any chunking and closing
    gives the same events as feeding it whole (`pedal_for_take`).
    """

    def __init__(self):
        self._open = np.zeros((0, 4))  # (onset_beat, onset_sec, sustain, soft) of groups held back
        self._prev = (-1, -1)      # CC values in force (decode_pedal's carry)
        self._last_t = -np.inf     # group times never go back (deviations can cross)
        self._end = 0.0            # latest note end seen, seconds

    def feed(self, onset_beat, onset_sec, duration_sec, sustain, soft) -> np.ndarray:
        """Notes of the next chunk, in score order: (K,) arrays each. Returns the PEDAL_DTYPE
        events of the groups this chunk completes (sorted)."""
        u = np.asarray(onset_beat, float)
        if len(u) == 0:
            return np.zeros(0, PEDAL_DTYPE)
        t = np.asarray(onset_sec, float)
        self._end = max(self._end, float(np.max(t + np.asarray(duration_sec, float))))
        first = np.flatnonzero(np.concatenate([[True], np.diff(u) > 1e-9]))
        groups = np.stack([u[first], np.minimum.reduceat(t, first), np.asarray(sustain)[first],
                           np.asarray(soft)[first]], 1).astype(float)
        if len(self._open) and abs(groups[0, 0] - self._open[-1, 0]) <= 1e-9:
            self._open[-1, 1] = min(self._open[-1, 1], groups[0, 1])
            groups = groups[1:]
        groups = np.concatenate([self._open, groups])
        self._open = groups[-2:].copy()
        return self._decode(groups[:-2], groups[-2, 1]) if len(groups) > 2 else np.zeros(0, PEDAL_DTYPE)

    def close(self) -> np.ndarray:
        """Events of the groups held back (the last interval ends with the take's last note)."""
        groups, self._open = self._open, np.zeros((0, 4))
        return self._decode(groups, self._end)

    def _decode(self, groups: np.ndarray, end_sec) -> np.ndarray:
        if not len(groups):
            return np.zeros(0, PEDAL_DTYPE)
        t = np.maximum.accumulate(np.maximum(groups[:, 1], self._last_t))
        self._last_t = float(t[-1])
        ev, self._prev = decode_pedal(t, max(float(end_sec), self._last_t), groups[:, 2].astype(np.int64),
                                      groups[:, 3].astype(np.int64), self._prev)
        return ev


def pedal_for_take(onset_beat: np.ndarray, take: np.ndarray) -> np.ndarray:
    """Pedal events of a rendered take (rows with index, onset_sec, duration_sec, sustain, soft).

    ``onset_beat`` (N,) are the score onsets of every score note (``take["index"]`` points into
    them). Each onset group starts at its earliest rendered note; the last group's interval ends
    with its notes. Returns PEDAL_DTYPE events, sorted.
    """
    if len(take) == 0:
        return np.zeros(0, PEDAL_DTYPE)
    take = np.sort(take, order="index")
    stream = PedalStream()
    ev = stream.feed(np.asarray(onset_beat, float)[take["index"]], take["onset_sec"], take["duration_sec"],
                     take["sustain"], take["soft"])
    return np.concatenate([ev, stream.close()])


def pedal_on_beats(onset_beat: np.ndarray, onset_sec: np.ndarray, events: np.ndarray,
                   *, per_beat: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A performance's sustain pedal on the score's beat axis (the whole-piece pedal figures).

    Performed time is mapped to score position through the notes (each onset group's earliest
    note, kept in order), linearly in between.

    Parameters
    ----------
    onset_beat, onset_sec : (M,) the performed notes: score onsets (beats) and onsets (s).
    events : PEDAL_DTYPE events (only CC64 is read); down is CC64 >= 64.
    per_beat : sample points per beat for the down fraction.

    Returns
    -------
    beats : (B,) whole beats (quarters) from the first onset to the last.
    down : (B,) fraction of each beat with the sustain down (0..1).
    lifts : (L,) score positions (beats) where the sustain goes from down to up.
    """
    u_all = np.asarray(onset_beat, float)
    order = np.argsort(u_all, kind="stable")
    u_all, t_all = u_all[order], np.asarray(onset_sec, float)[order]
    first = np.flatnonzero(np.concatenate([[True], np.diff(u_all) > 1e-9])) if len(u_all) else np.zeros(0, int)
    if len(first) < 2:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    u = u_all[first]
    t = np.maximum.accumulate(np.minimum.reduceat(t_all, first))
    beats = np.arange(np.ceil(u[0] - 1e-6), np.floor(u[-1] + 1e-6)).astype(np.int64)
    pos = beats[:, None] + (np.arange(per_beat)[None, :] + 0.5) / per_beat
    sus = np.sort(events[events["number"] == SUSTAIN_CC], order="time_sec") if len(events) else events
    if len(sus) == 0:
        return beats, np.zeros(len(beats)), np.zeros(0)
    times, values = sus["time_sec"].astype(float), sus["value"].astype(int)
    down = _value_at(times, values, np.interp(pos.ravel(), u, t)).reshape(pos.shape) >= 64
    is_down = values >= 64
    lift_t = times[1:][is_down[:-1] & ~is_down[1:]]
    lift_t = lift_t[(lift_t >= t[0]) & (lift_t <= t[-1])]
    # time -> score position: the inverse of the same piecewise-linear map (t may repeat)
    lifts = np.interp(lift_t, t + np.arange(len(t)) * 1e-9, u)
    return beats, down.mean(1), lifts


def lift_agreement(a: np.ndarray, b: np.ndarray, *, within_beat: float = 0.25) -> dict:
    """Precision, recall and F1 of lifts ``a`` against reference lifts ``b`` (score beats): a
    lift matches one of the other's within ``within_beat`` (each matched once, greedily in order)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if len(a) == 0 or len(b) == 0:
        f = 1.0 if len(a) == len(b) else 0.0
        return {"precision": f if len(a) else float("nan"), "recall": f if len(b) else float("nan"), "f1": f}
    used = np.zeros(len(b), bool)
    hit = 0
    for x in a:
        lo, hi = np.searchsorted(b, x - within_beat), np.searchsorted(b, x + within_beat, side="right")
        free = [k for k in range(lo, hi) if not used[k]]
        if free:
            used[min(free, key=lambda k: abs(b[k] - x))] = True
            hit += 1
    p, r = hit / len(a), hit / len(b)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}
