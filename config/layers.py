"""The channel layer's Redis connection options (used by settings, and by tests that build a layer).

redis-py's asyncio connections do not retry by default: after Redis restarts, every connection
the layer pooled on an event loop (Daphne's, a worker's send loop) is stale, and its next command
raises ConnectionError once before the pool reconnects. A consumer whose ``group_add`` or
``receive`` meets that error dies (WebSocket 1011), so the first listener after a restart failed
unless something else on the same loop had met the error first. With a retry the command
reconnects and runs again, on every loop, whoever comes first.
"""
from __future__ import annotations

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

RETRIES = 3   # reconnect attempts per command (waits 50, 100, 200 ms): a restart, not an outage


def channel_layer_host(redis_url: str) -> dict:
    """One ``hosts`` entry of channels_redis's RedisChannelLayer for ``redis_url``.

    No read timeout: redis-py 8 reads with 5 s by default, which cuts the layer's blocking
    BZPOPMIN on idle sockets (consumers died with 1011 every 5 s).
    """
    return {"address": redis_url, "socket_timeout": None,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES)}
