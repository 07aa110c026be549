"""The Redis that the run command and the tests start (scripts.services.RedisServer) keeps an
append-only file: a queued Celery message survives a crash and a restart of the server; the
channel layer's connections reconnect after a restart."""
from __future__ import annotations

import asyncio

import redis

from config.layers import channel_layer_host
from scripts.services import RedisServer


def test_a_queued_message_survives_a_crash_and_a_restart(tmp_path):
    server = RedisServer(tmp_path / "redis", persist=True).start()
    try:
        r = redis.Redis.from_url(server.url)
        r.lpush("render", b'{"task": "webapp.tasks.render_job", "id": "job-1"}')
        r.close()
        server.proc.kill()  # a crash: no shutdown snapshot is written
        server.proc.wait()
        server.start()
        r = redis.Redis.from_url(server.url)
        assert r.lrange("render", 0, -1) == [b'{"task": "webapp.tasks.render_job", "id": "job-1"}']
        r.lpush("render", b"job-2")
        r.close()
        server.restart()
        r = redis.Redis.from_url(server.url)
        assert r.llen("render") == 2
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        r.close()
    finally:
        server.stop()


def test_the_test_redis_is_append_only_too(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        r = redis.Redis.from_url(server.url)
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        r.close()


def _layer_after_restart(server: RedisServer, host: dict) -> str:
    """On one event loop, a listener (a consumer's receive) is waiting on its channel when Redis
    restarts; then an event is sent to its group. Returns what the waiting receive got: the
    event's state, or the name of the exception it raised (what a consumer would die of)."""
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[host])

    async def scenario() -> str:
        channel = await layer.new_channel()
        await layer.group_add("job-x", channel)
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.3)  # the receive's BZPOPMIN is now blocked in Redis
        await asyncio.to_thread(server.restart)
        try:
            await layer.group_send("job-x", {"type": "job.state", "state": "done"})
            return (await asyncio.wait_for(waiting, 10))["state"]
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__
        finally:
            waiting.cancel()
            await layer.close_pools()

    return asyncio.run(scenario())


def test_a_waiting_listener_survives_a_redis_restart(tmp_path):
    """The settings' layer options (config.layers): a consumer waiting for its job's events when
    Redis restarts keeps waiting on a new connection and gets the next event, so its WebSocket
    stays open; without the retry its receive raises (the socket closes with 1011)."""
    with RedisServer(tmp_path / "redis") as server:
        assert _layer_after_restart(server, channel_layer_host(server.url)) == "done"
        bare = {k: v for k, v in channel_layer_host(server.url).items() if k != "retry"}
        assert _layer_after_restart(server, bare) == "ConnectionError"  # the fault is real
