"""Small asyncio helpers shared by the scaler's long-running tasks."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[None], timeout_s: float = 2.0) -> None:
    """Cancel ``task`` and wait for it, at most ``timeout_s`` (it may swallow one cancel)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not task.done() and asyncio.get_running_loop().time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: a failure at shutdown is not worth a warning
    elif not task.done():
        logger.warning("task %s did not stop within %.1f s", task.get_name(), timeout_s)
