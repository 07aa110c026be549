"""The channel layer's Redis connection options (used by settings, and by tests that build a layer).

redis-py's asyncio connections do not retry by default. An idle pooled connection that went
stale in a Redis restart is noticed when the pool hands it out, but a command in flight when
Redis restarts is not: the blocking BZPOPMIN of a consumer waiting for its job's events raised
ConnectionError, the consumer died and its WebSocket closed with 1011. With a retry the command
reconnects and runs again (tests/integration/test_services_redis.py restarts a real Redis under
a waiting listener, with and without the retry).
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
