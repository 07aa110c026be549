"""Pure conversions between the renderer's arrays and the web contract's NOTE dicts (no Django).

NOTE = {"i": score note index, "id": partitura note id, "pitch": MIDI pitch, "onset": s,
"duration": s, "velocity": 1..127, "tempo": bpm, "z": [5 floats], "v": variation}.
"""
from __future__ import annotations

import csv
import io
import math

import numpy as np

CSV_FIELDS = ["i", "id", "pitch", "onset", "duration", "velocity", "tempo", "v",
              "z0", "z1", "z2", "z3", "z4"]


def _f(x: float, nd: int) -> float:
    x = float(x)
    return round(x, nd) if math.isfinite(x) else 0.0


def chunk_to_notes(chunk: np.ndarray) -> list[dict]:
    """NOTE dicts of one rendered chunk.

    Parameters
    ----------
    chunk : np.ndarray
        Structured array, shape (K,), with fields id, pitch, onset_sec, duration_sec, velocity,
        tempo_bpm, index, and optionally z (K, 5) and variation.

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
        out.append(note)
    return out


def notes_to_perf_array(notes: list[dict]):
    """The render.performance.PERF_NOTE_DTYPE array of NOTE dicts, sorted by onset."""
    from render.performance import PERF_NOTE_DTYPE

    arr = np.zeros(len(notes), PERF_NOTE_DTYPE)
    for k, n in enumerate(notes):
        arr[k] = (n["id"], n["pitch"], n["onset"], max(n["duration"], 0.0), n["velocity"])
    return arr[np.argsort(arr["onset_sec"], kind="stable")]


def notes_to_csv(notes: list[dict]) -> str:
    """CSV text with one row per performed note (CSV_FIELDS columns), in score order."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for n in sorted(notes, key=lambda n: (n.get("v", 0), n["i"])):
        z = list(n.get("z") or []) + [""] * 5
        w.writerow([n["i"], n["id"], n["pitch"], n["onset"], n["duration"], n["velocity"],
                    n["tempo"], n.get("v", 0), *z[:5]])
    return buf.getvalue()


def performance_duration(notes: list[dict]) -> float:
    """Seconds from the performance's start to the end of its last note."""
    return max((n["onset"] + n["duration"] for n in notes), default=0.0)
