"""Request timing for the browser's devtools and the HTTP benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse


class ServerTimingMiddleware:
    """Adds `Server-Timing: app;dur=<ms>`: the time Django spent on the request.

    Outermost middleware, so it covers every other middleware and the view (not the WSGI
    server's own work). bench/queue_http.py reads it as the server time of a request. Only
    with PARLEY_SERVER_TIMING (on with DEBUG): in production it would tell anyone how long
    each request takes.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.PARLEY_SERVER_TIMING:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = (
            f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        )
        return response
