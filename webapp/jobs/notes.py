"""Pure conversions between the renderer's arrays and the web contract's NOTE dicts (no Django).

NOTE = {"i": score note index, "id": partitura note id, "pitch": MIDI pitch, "onset": s,
"duration": s, "velocity": 1..127, "tempo": bpm, "z": [5 floats], "v": variation,
"b": score onset in quarter notes (when the score is known), "sp": the sustain pedal class of
the note's chord (render.pedal, 0..80), "sf": the soft pedal (0/1)}.

PEDAL = {"t": s, "cc": 64 sustain or 67 soft, "value": 0..127, "v": variation}: the controller
changes of a take, sent with the chunk whose notes complete them (render.pedal.PedalStream).
"""
from __future__ import annotations

import math

import numpy as np


def _f(x: float, nd: int) -> float:
    x = float(x)
    return round(x, nd) if math.isfinite(x) else 0.0


def notes_message_text(*, seq: int, notes_json: str, pedal_json: str) -> str:
    """The WebSocket message of chunk ``seq`` ({"type": "notes", "seq", "notes", "pedal"}) from
    its notes and pedal events already encoded as JSON arrays (never decoded again here)."""
    return f'{{"type":"notes","seq":{seq},"notes":{notes_json},"pedal":{pedal_json}}}'


def chunk_to_notes(chunk: np.ndarray, *, beats: np.ndarray | None = None) -> list[dict]:
    """NOTE dicts of one rendered chunk.

    Parameters
    ----------
    chunk : np.ndarray
        Structured array, shape (K,), with fields id, pitch, onset_sec, duration_sec, velocity,
        tempo_bpm, index, and optionally z (K, 5) and variation.
    beats : np.ndarray, optional
        Score onsets (quarter notes) of every score note; adds "b" (the note's score position,
        what the plots draw against).

    Returns
    -------
    list of dict
        One NOTE per row, in the chunk's order; times in seconds (rounded to 0.1 ms).
    """
    names = chunk.dtype.names
    K = len(chunk)
    if K == 0:
        return []
    # column by column: per-row access of a structured array costs ~1 us a field. Rounded by
    # numpy (k / 10**nd: the double nearest that decimal, so JSON stays short; Python's round
    # can differ only for a value within float error of a half-way point)
    idx = chunk["index"].astype(np.int64)
    cols = {
        "i": idx.tolist(), "id": [str(x) for x in chunk["id"].tolist()],
        "pitch": chunk["pitch"].astype(np.int64).tolist(),
        "onset": _rounded(chunk["onset_sec"], 4), "duration": _rounded(chunk["duration_sec"], 4),
        "velocity": np.clip(chunk["velocity"].astype(np.int64), 1, 127).tolist(),
        "tempo": _rounded(chunk["tempo_bpm"], 2),
        "z": (np.round(_finite(chunk["z"].reshape(K, -1)), 4).tolist() if "z" in names else [[] for _ in range(K)]),
    }
    if "sustain" in names:
        cols["sp"], cols["sf"] = chunk["sustain"].astype(np.int64).tolist(), chunk["soft"].astype(np.int64).tolist()
    cols["v"] = chunk["variation"].astype(np.int64).tolist() if "variation" in names else [0] * K
    if beats is not None:
        cols["b"] = _rounded(np.asarray(beats)[idx], 4)
    keys = list(cols)
    return [dict(zip(keys, values)) for values in zip(*cols.values())]


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    return np.where(np.isfinite(a), a, 0.0)


def _rounded(a: np.ndarray, nd: int) -> list[float]:
    return np.round(_finite(a), nd).tolist()


PERF_ARRAY_DTYPE = np.dtype([("id", "U32"), ("pitch", "i2"), ("onset_sec", "f8"),
                             ("duration_sec", "f8"), ("velocity", "i2"), ("tempo_bpm", "f4"),
                             ("sustain", "i2"), ("soft", "i2"),
                             ("variation", "i2"), ("index", "i4"), ("z", "f4", (5,))])


def notes_to_array(notes: list[dict]) -> np.ndarray:
    """NOTE dicts as a structured array (PERF_ARRAY_DTYPE, shape (N,)) sorted by onset.

    The fields are those of render.performance.PERF_NOTE_DTYPE plus tempo_bpm, sustain and soft
    (the pedal classes), variation, index and z, which render.export's MIDI and CSV writers read.
    """
    arr = np.zeros(len(notes), PERF_ARRAY_DTYPE)
    for k, n in enumerate(notes):
        z = (list(n.get("z") or []) + [0.0] * 5)[:5]
        arr[k] = (n["id"], n["pitch"], n["onset"], max(n["duration"], 0.0), n["velocity"],
                  n.get("tempo", 0.0), n.get("sp", 0), n.get("sf", 0), n.get("v", 0), n["i"], z)
    return arr[np.argsort(arr["onset_sec"], kind="stable")]


def performance_duration(notes: list[dict]) -> float:
    """Seconds from the performance's start to the end of its last note."""
    return max((n["onset"] + n["duration"] for n in notes), default=0.0)


def pedal_to_events(events: np.ndarray, *, variation: int) -> list[dict]:
    """PEDAL dicts of render.performance.PEDAL_DTYPE events (K,) of one take."""
    return [{"t": _f(e["time_sec"], 4), "cc": int(e["number"]), "value": int(e["value"]), "v": int(variation)}
            for e in events]


def events_to_pedal(pedal: list[dict]) -> np.ndarray:
    """PEDAL dicts as render.performance.PEDAL_DTYPE (K,) sorted by time (for MIDI export)."""
    arr = np.zeros(len(pedal), [("time_sec", "f8"), ("number", "i2"), ("value", "i2")])
    for k, e in enumerate(pedal):
        arr[k] = (max(float(e["t"]), 0.0), int(e["cc"]), int(e["value"]))
    return arr[np.argsort(arr["time_sec"], kind="stable")]
