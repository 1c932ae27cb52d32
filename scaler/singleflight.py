"""Coalescing of concurrent identical reads (single-flight).

At most one read per key is in flight, and each call costs at most one read. A caller that
may take a result already on its way (``fresh=False``: GetMetrics, IsActive) joins the read
in flight. A caller that must see a state read *after* its call (``fresh=True``: a stream
woken by a notification) queues for the next read, which starts as soon as the current one
ends and serves every queued caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs ``fn`` for concurrent callers, at most once in flight."""

    def __init__(self, fn: Callable[[], Awaitable[T]]) -> None:
        self._fn = fn
        self._running: asyncio.Future[T] | None = None
        self._queued: asyncio.Future[T] | None = None

    async def __call__(self, *, fresh: bool = True) -> T:
        if self._running is None:
            fut = self._launch()
        elif not fresh:
            fut = self._running
        else:
            if self._queued is None:
                self._queued = asyncio.get_running_loop().create_future()
            fut = self._queued
        return await asyncio.shield(fut)

    def _launch(self) -> asyncio.Future[T]:
        task: asyncio.Future[T] = asyncio.ensure_future(self._fn())
        self._running = task
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Future[T]) -> None:
        if not task.cancelled():
            task.exception()  # mark retrieved: callers may all have gone
        self._running = None
        queued, self._queued = self._queued, None
        if queued is not None:
            self._launch().add_done_callback(lambda done: settle(queued, done))


def settle(target: asyncio.Future[T], source: asyncio.Future[T]) -> None:
    """Give ``target`` the outcome of the finished ``source`` (unless already done)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())
