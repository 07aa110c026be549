"""Pure conversions between the renderer's arrays and the web contract's NOTE dicts (no Django).

NOTE = {"i": score note index, "id": partitura note id, "pitch": MIDI pitch, "onset": s,
"duration": s, "velocity": 1..127, "tempo": bpm, "z": [5 floats], "v": variation,
"b": score onset in quarter notes (when the score is known)}.
"""
from __future__ import annotations

import math

import numpy as np

def _f(x: float, nd: int) -> float:
    x = float(x)
    return round(x, nd) if math.isfinite(x) else 0.0


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
    out = []
    for row in chunk:
        note = {
            "i": int(row["index"]), "id": str(row["id"]), "pitch": int(row["pitch"]),
            "onset": _f(row["onset_sec"], 4), "duration": _f(row["duration_sec"], 4),
            "velocity": int(min(127, max(1, int(row["velocity"])))),
            "tempo": _f(row["tempo_bpm"], 2),
            "z": [_f(v, 4) for v in np.atleast_1d(row["z"])] if "z" in names else [],
        }
        note["v"] = int(row["variation"]) if "variation" in names else 0
        if beats is not None:
            note["b"] = _f(beats[note["i"]], 4)
        out.append(note)
    return out


PERF_ARRAY_DTYPE = np.dtype([("id", "U32"), ("pitch", "i2"), ("onset_sec", "f8"),
                             ("duration_sec", "f8"), ("velocity", "i2"), ("tempo_bpm", "f4"),
                             ("variation", "i2"), ("index", "i4"), ("z", "f4", (5,))])


def notes_to_array(notes: list[dict]) -> np.ndarray:
    """NOTE dicts as a structured array (PERF_ARRAY_DTYPE, shape (N,)) sorted by onset.

    The fields are those of render.performance.PERF_NOTE_DTYPE plus tempo_bpm, variation,
    index and z, which render.export's MIDI and CSV writers read.
    """
    arr = np.zeros(len(notes), PERF_ARRAY_DTYPE)
    for k, n in enumerate(notes):
        z = (list(n.get("z") or []) + [0.0] * 5)[:5]
        arr[k] = (n["id"], n["pitch"], n["onset"], max(n["duration"], 0.0), n["velocity"],
                  n.get("tempo", 0.0), n.get("v", 0), n["i"], z)
    return arr[np.argsort(arr["onset_sec"], kind="stable")]


def performance_duration(notes: list[dict]) -> float:
    """Seconds from the performance's start to the end of its last note."""
    return max((n["onset"] + n["duration"] for n in notes), default=0.0)
