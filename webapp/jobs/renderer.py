"""The model handle of a worker process: the renderer is loaded once, on first use, and reused
by every render job (webapp.jobs.worker) and survey stimulus (webapp.surveys.stimuli).
`renderer_warm_up` runs a tiny render through the worker's path at start-up, so that the first
user's job does not pay for first calls (lazy imports, allocations, BLAS set-up)."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from render.pedal import PedalStream
from render.score import NOTE_DTYPE, Score
from webapp.jobs.notes import chunk_to_notes

log = logging.getLogger(__name__)
_renderer = None
_renderer_lock = threading.Lock()


def get_renderer():
    """The worker process's model (ml.inference.Renderer), loaded on first use."""
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            from ml.inference import Renderer  # torch: only in the worker processes

            t0 = time.perf_counter()
            _renderer = Renderer.load()  # env MODEL_CHECKPOINT and DEVICE, read there only
            log.info("model loaded in %.2f s", time.perf_counter() - t0)
        return _renderer


def renderer_warm_up(*, n_notes: int = 48) -> float:
    """Load the model and render a short synthetic score (two takes) the way a job does: the
    decode, the NOTE dicts and the pedal stream. Returns the seconds it took."""
    t0 = time.perf_counter()
    renderer = get_renderer()
    notes = np.zeros(n_notes, NOTE_DTYPE)
    for i in range(n_notes):
        on = i * 0.5
        notes[i] = (f"w{i}", 60 + (0, 2, 4, 5, 7, 9, 11, 12)[i % 8], on, 0.5, 1, 1, False, on // 4 * 4, 4.0,
                    4, 4, 0, 1, 100.0, 64)
    score = Score(notes=notes, title="warm-up")
    stream = PedalStream()
    for chunk in renderer.render(score, seed=0, variations=2, chunk_notes=16):
        chunk_to_notes(chunk, beats=notes["onset_beat"])
        rows = chunk[chunk["variation"] == 0]
        stream.feed(notes["onset_beat"][rows["index"]], rows["onset_sec"], rows["duration_sec"], rows["sustain"],
                    rows["soft"])
    stream.close()
    return time.perf_counter() - t0
