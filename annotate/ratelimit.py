"""Request budgets for the token API: fixed one-minute windows counted in the cache.

While the cache is unreachable nothing is counted and every request passes (availability
first; sign-in lockout, django-axes, keeps its counts in the database).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

WINDOW_S = 60


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind PARLEY_PROXY_COUNT proxies the entry of
    X-Forwarded-For that the outermost trusted proxy added (the client cannot forge it)."""
    count = settings.PARLEY_PROXY_COUNT
    if count:
        hops = [
            h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        hops = [h for h in hops if h]
        if len(hops) >= count:
            return str(hops[-count])
    return str(request.META.get("REMOTE_ADDR", ""))


def _window(key: str) -> tuple[str, int]:
    """The cache key of the current window, and the seconds until the next one starts."""
    now = time.time()
    return f"ratelimit:{key}:{int(now // WINDOW_S)}", int(WINDOW_S - now % WINDOW_S) + 1


def over_limit(key: str, limit: int) -> int | None:
    """Without counting: seconds to wait when `key` has used its budget, else None."""
    name, retry_after = _window(key)
    return retry_after if (cache.get(name) or 0) >= limit else None


def spend(key: str, limit: int) -> int | None:
    """Count one request against `key`; seconds to wait when that goes over `limit`."""
    name, retry_after = _window(key)
    count = getattr(cache, "count", None)  # Redis (annotate/cache.py): one round trip
    if count is not None:
        used = count(name, WINDOW_S + 5)
    else:
        cache.add(name, 0, timeout=WINDOW_S + 5)
        try:
            used = cache.incr(name)
        except ValueError:  # the key expired in between
            return None
    if used is None:  # the cache is unreachable: nothing is counted
        return None
    return retry_after if used > limit else None
