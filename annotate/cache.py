"""A Redis cache that degrades instead of failing while Redis cannot be reached.

Parley keeps only derived, short-lived values in the cache (queue counters, dashboard
snapshots, import progress), so an outage must cost freshness, never a request: every read
misses and every write is dropped while Redis is down. After a failure Redis is left alone for
`RETRY_AFTER_S` seconds, so a dead or hung server does not add a timeout to every call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER_S = 5.0


class ResilientRedisCache(RedisCache):
    _down_until = 0.0  # monotonic time before which Redis is not tried again

    def _try(self, call: Callable[[], T], fallback: T) -> T:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            result = call()
        except (RedisError, OSError) as exc:
            if not self._down_until:
                logger.warning("cache unreachable, serving without it: %s", exc)
            self._down_until = time.monotonic() + RETRY_AFTER_S
            return fallback
        if self._down_until:
            logger.warning("cache reachable again")
            self._down_until = 0.0
        return result

    def count(self, key: Any, timeout: int, version: int | None = None) -> int | None:
        """Add one to the counter `key` (a new one starts at 1) and keep it `timeout`
        seconds from now: one round trip (INCR and EXPIRE in a pipeline) where `add` then
        `incr` take three. None while Redis is down."""
        name = self.make_and_validate_key(key, version=version)

        def call() -> int:
            client = self._cache.get_client(name, write=True)  # type: ignore[attr-defined]
            pipeline = client.pipeline()
            pipeline.incr(name)
            pipeline.expire(name, timeout)
            return int(pipeline.execute()[0])

        return self._try(call, None)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._try(
            lambda: super(ResilientRedisCache, self).get(key, default, version), default
        )

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._try(
            lambda: super(ResilientRedisCache, self).get_many(keys, version), {}
        )

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._try(
            lambda: super(ResilientRedisCache, self).has_key(key, version), False
        )

    def set(
        self, key: Any, value: Any, timeout: Any = 300, version: int | None = None
    ) -> None:
        self._try(
            lambda: super(ResilientRedisCache, self).set(key, value, timeout, version),
            None,
        )

    def add(
        self, key: Any, value: Any, timeout: Any = 300, version: int | None = None
    ) -> bool:
        # False: "not added", so that work guarded by add() is not started blind.
        return self._try(
            lambda: super(ResilientRedisCache, self).add(key, value, timeout, version),
            False,
        )

    def set_many(
        self, data: Any, timeout: Any = 300, version: int | None = None
    ) -> list[Any]:
        return self._try(
            lambda: super(ResilientRedisCache, self).set_many(data, timeout, version),
            list(data),
        )

    def touch(self, key: Any, timeout: Any = 300, version: int | None = None) -> bool:
        return self._try(
            lambda: super(ResilientRedisCache, self).touch(key, timeout, version), False
        )

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._try(
            lambda: super(ResilientRedisCache, self).delete(key, version), False
        )

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._try(
            lambda: super(ResilientRedisCache, self).delete_many(keys, version), None
        )

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        # A missing key raises ValueError in Django; so does an unreachable cache here.
        result = self._try(
            lambda: super(ResilientRedisCache, self).incr(key, delta, version), None
        )
        if result is None:
            raise ValueError(f"key {key!r} not found (or the cache is unreachable)")
        return result
