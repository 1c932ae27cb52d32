"""The scaler's Prometheus metrics: what it decided for each model, and how fast it answers.

Per model (label ``model``), from the last decision: the answer KEDA got (``desired``), the
strategy's count before the global budget (``wanted``), the queue state it came from, and
the budget's share. Also the global limit, RPC latency by method and status code, and Redis
errors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter, Gauge, Histogram

from scaler.deciding import Decision

_PER_MODEL = {
    "desired": "Workers the scaler answers (the metric KEDA gets)",
    "wanted": "Workers the model's strategy asks for, before the global budget",
    "waiting": "Sub-task messages waiting in the model's queue",
    "running": "Sub-tasks reserved or running on a worker",
    "planned": "Sub-tasks planned by the task controller and not finished",
    "busy": "Workers running a sub-task",
    "live": "Worker processes alive (busy, idle or draining)",
    "main_tasks": "Analysis stages in progress",
    "share": "The model's fair share of the global worker limit (NaN: no limit)",
    "granted": "Workers the global budget grants the model (NaN: no limit)",
}
MODEL_GAUGES = {
    name: Gauge(f"oasis_keda_scaler_{name}", text, ["model"]) for name, text in _PER_MODEL.items()
}
GLOBAL_LIMIT = Gauge(
    "oasis_keda_scaler_global_worker_limit", "The global worker limit (NaN: none is set)"
)
RPC_SECONDS = Histogram(
    "oasis_keda_scaler_rpc_seconds",
    "Time to answer one unary RPC",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
)
REDIS_ERRORS = Counter("oasis_keda_scaler_redis_errors_total", "Reads that found Redis unreachable")


def observe(decisions: list[Decision]) -> None:
    """Record decisions (all of one read, or one model's)."""
    for d in decisions:
        s = d.state
        values = {
            "desired": d.desired, "wanted": d.wanted, "waiting": s.waiting,
            "running": s.reserved, "planned": s.planned, "busy": s.busy, "live": s.live,
            "main_tasks": s.main_tasks, "share": math.nan if d.share is None else d.share,
            "granted": math.nan if d.limit is None else d.desired,
        }  # fmt: skip
        for name, value in values.items():
            MODEL_GAUGES[name].labels(model=d.model_id).set(value)
    if decisions:
        limit = decisions[0].limit
        GLOBAL_LIMIT.set(math.nan if limit is None else limit)


R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]


def timed(method: Handler[R]) -> Handler[R]:
    """Record a unary RPC's latency, labelled with its method and status code."""
    name = method.__name__

    @wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        started = time.perf_counter()
        code = "OK"
        try:
            return await method(self, request, context)
        except BaseException:
            status = context.code() if hasattr(context, "code") else None
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        finally:
            RPC_SECONDS.labels(method=name, code=code).observe(time.perf_counter() - started)

    return wrapper
