"""Job events: what the render worker and the queue tell a job's WebSocket listeners.

Events go to the job's channel-layer group (webapp.jobs.consumers relays them). A send survives a Redis
that is down or restarting: it is retried with a short backoff and reports failure instead of
raising.
"""
from __future__ import annotations

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from webapp.models import RenderJob

log = logging.getLogger(__name__)
# Faults of the broker or channel layer (Redis down, restarting, unreachable).
BROKER_ERRORS = (KombuOperationalError, RedisError, OSError)
SEND_BACKOFF_S = (0.1, 0.4, 1.0)   # waits between the attempts of a channel-layer send


def job_group_send(job: RenderJob, event: dict) -> bool:
    """Send a channel-layer event to everyone listening to the job, retrying a Redis fault.

    Parameters
    ----------
    job : RenderJob
    event : dict
        The channel-layer event (``type`` names the consumer's handler).

    Returns
    -------
    bool
        False when every attempt failed (the fault is logged, never raised).
    """
    layer = get_channel_layer()
    if layer is None:
        return True
    for attempt in range(len(SEND_BACKOFF_S) + 1):
        try:
            async_to_sync(layer.group_send)(job.group_name, event)
            return True
        except BROKER_ERRORS as exc:
            if attempt == len(SEND_BACKOFF_S):
                log.warning("job %s: could not send %s to its listeners (%s: %s)", job.id,
                            event.get("type"), type(exc).__name__, exc)
                return False
            time.sleep(SEND_BACKOFF_S[attempt])
    return False


def job_state_event(job: RenderJob) -> dict:
    """Channel-layer event announcing a job's state (consumers relay it as a 'state' message)."""
    return {"type": "job.state", "state": job.state, "message": job.message or None}


def channel_layer_warm_up() -> None:
    """Open this process's channel-layer connection (an event to a group nobody listens to), so
    that a worker's first job does not pay for it before its first message. Never raises."""
    try:
        async_to_sync(get_channel_layer().group_send)("warm-up", {"type": "job.state", "state": "idle"})
    except Exception as exc:  # the first job's sends retry and report
        log.info("channel layer warm-up incomplete: %s: %s", type(exc).__name__, exc)
