"""The Redis that the run command and the tests start (scripts.services.RedisServer) keeps an
append-only file: a queued Celery message survives a crash and a restart of the server."""
from __future__ import annotations

import redis

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
