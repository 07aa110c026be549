"""Integration fixtures: a live stack (Daphne + Celery worker + real Redis) per database backend.

Every test that takes ``stack`` runs once against SQLite and once against PostgreSQL (the local
server at 127.0.0.1:5432, env TEST_POSTGRES_URL; a fresh database is created and dropped).
The Redis server is the session's private one (``redis_server`` from tests/conftest.py).

``own_stack`` is for fault tests that stop and restart the services: a stack (per module, SQLite
and PostgreSQL) with a Redis of its own and, for PostgreSQL, a throwaway cluster of its own
(`PostgresCluster`, initdb/pg_ctl in a temporary folder), so that no other test sees the faults.

The model: env MODEL_CHECKPOINT if set, else the shipped checkpoint (ml/checkpoints/cvrnn.pt),
else a checkpoint of the real architecture with random weights written by ml.model.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.services import RedisServer, free_port
from tests.integration.stack import Client, PostgresCluster, Stack

STACK_ENV = {
    "UPLOAD_MAX_BYTES": "3000000",
    "UPLOAD_MAX_NOTES": "20000",
    "RENDER_STALE_AFTER_S": "4",
    "RENDER_MAX_CONCURRENT_PER_USER": "2",
    "LOG_LEVEL": "INFO",
    "UPLOAD_PARSE_TIMEOUT_S": "240",
}
BIG_SCORE_NOTES = 4_000     # rendered to the end only by test_render_batching (4 takes)
MEDIUM_SCORE_NOTES = 300    # several chunks


@pytest.fixture(scope="session")
def model_checkpoint(tmp_path_factory) -> str:
    if os.environ.get("MODEL_CHECKPOINT"):
        path = Path(os.environ["MODEL_CHECKPOINT"])
        assert path.is_file(), f"MODEL_CHECKPOINT={path} does not exist"
        return str(path)
    from ml.inference import DEFAULT_CHECKPOINT

    if DEFAULT_CHECKPOINT.is_file():  # the shipped, trained model
        return str(DEFAULT_CHECKPOINT)
    import torch

    from ml.model import CVRNN, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.pt"
    save_checkpoint(path, CVRNN(ModelConfig()))
    return str(path)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def stack(request, redis_server, model_checkpoint, tmp_path_factory):
    db = request.param
    redis_url = redis_server.rsplit("/", 1)[0] + ("/1" if db == "sqlite" else "/2")
    s = Stack(tmp_path_factory.mktemp(f"stack-{db}"), db=db, redis_url=redis_url,
              port=free_port(), env=dict(STACK_ENV, MODEL_CHECKPOINT=model_checkpoint))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def own_stack(request, model_checkpoint, tmp_path_factory):
    """A stack whose Redis (``own_stack.redis``) and, for PostgreSQL, database server
    (``own_stack.pg``) belong to it alone: tests may stop and restart them."""
    db = request.param
    redis = RedisServer(tmp_path_factory.mktemp(f"own-redis-{db}")).start()
    pg = PostgresCluster().start() if db == "postgresql" else None
    s = Stack(tmp_path_factory.mktemp(f"own-stack-{db}"), db=db, redis_url=redis.url,
              port=free_port(), env=dict(STACK_ENV, MODEL_CHECKPOINT=model_checkpoint),
              **({"pg_admin_url": pg.admin_url} if pg else {}))
    s.redis, s.pg = redis, pg
    try:
        s.start()
        yield s
    finally:
        try:
            if pg is not None and not (pg.data / "postmaster.pid").exists():
                pg.start()  # a test left it stopped: the stack drops its database on it
            s.stop()
        finally:
            redis.stop()
            if pg is not None:
                pg.remove()


@pytest.fixture
def client(stack) -> Client:
    return Client(stack)


@pytest.fixture
def user(stack):
    """A signed-up, logged-in client with a fresh username."""
    import uuid

    return Client(stack).signup(f"u{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def good_inputs(tmp_path_factory):
    from tests.data.corpus import make_good_inputs

    return make_good_inputs(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory):
    from tests.data.corpus import make_bad_inputs

    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="session")
def medium_score(tmp_path_factory) -> Path:
    from tests.data.corpus import _many_notes_midi

    path = tmp_path_factory.mktemp("medium") / "medium.mid"
    path.write_bytes(_many_notes_midi(MEDIUM_SCORE_NOTES))
    return path


@pytest.fixture(scope="session")
def big_score(tmp_path_factory) -> Path:
    """A MIDI score of BIG_SCORE_NOTES notes (long enough to cancel or kill a render midway)."""
    from tests.data.corpus import _many_notes_midi

    path = tmp_path_factory.mktemp("big") / "big.mid"
    path.write_bytes(_many_notes_midi(BIG_SCORE_NOTES))
    return path


@pytest.fixture(scope="session")
def _big_users():
    return {}


@pytest.fixture
def big_user(stack, big_score, medium_score, _big_users):
    """(client, big score id, medium score id): one user per stack (scores uploaded once)."""
    import uuid

    if stack.db not in _big_users:
        c = Client(stack).signup(f"big{uuid.uuid4().hex[:8]}")
        _big_users[stack.db] = (c, c.upload_ok(big_score), c.upload_ok(medium_score))
    return _big_users[stack.db]
