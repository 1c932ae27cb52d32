"""The API's Prometheus metrics: requests by route, method and status code.

The route is the path template (``/v2/analyses/{pk}/``), so a label never holds an id;
a request that matches no route is counted under ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "oasis_keda_api_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "oasis_keda_api_request_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def _route(app: Any, scope: Scope) -> str:
    matched = scope.get("route")  # set by the router on the scope it was given
    if matched is not None and hasattr(matched, "path"):
        return str(matched.path)
    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class RequestMetrics:
    """Pure ASGI middleware (responses stream through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route(scope.get("app"), scope)
            method = str(scope.get("method", ""))
            REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            REQUEST_SECONDS.labels(route=route, method=method).observe(
                time.perf_counter() - started
            )
