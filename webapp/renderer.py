"""The model handle of a worker process: the renderer is loaded once, on first use, and reused
by every render job (webapp.streaming) and survey stimulus (webapp.surveys.stimuli)."""
from __future__ import annotations

import logging
import threading
import time

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
