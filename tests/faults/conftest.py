"""Fault tests: real Redis servers stopped and started, real workers killed with SIGKILL.

Each test that needs Redis gets one of its own (`private_redis`), so stopping it disturbs no
other test; the web side (this process: the test client, the in-process Celery producer and
the cache) and the workers the test starts all point at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.processes import RedisServer

pytestmark = pytest.mark.worker


def _point_celery_at(url: str) -> None:
    from annotate.celery import app

    app.conf.broker_url = url
    app.conf.broker_write_url = None
    app.conf.broker_read_url = None
    app._pool = None  # the producer's connection pool, made anew for the new URL
    app.amqp._producer_pool = None


@pytest.fixture
def private_redis(tmp_path, settings) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    previous = settings.CELERY_BROKER_URL
    _point_celery_at(server.url)
    settings.CELERY_BROKER_URL = server.url
    settings.CACHES = {
        "default": {
            "BACKEND": "annotate.cache.ResilientRedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "parley",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
    yield server
    server.stop()
    _point_celery_at(previous)


def redis_env(server: RedisServer) -> dict[str, Any]:
    """A worker's settings for this Redis as broker and cache."""
    return {"REDIS_URL": server.url, "CELERY_BROKER_URL": server.url}


def queued_task_names(server: RedisServer, queue: str) -> list[str]:
    """The task names of the messages waiting in a Celery queue on this Redis."""
    import json

    import redis

    client = redis.Redis.from_url(server.url)
    return [json.loads(m)["headers"]["task"] for m in client.lrange(queue, 0, -1)]
