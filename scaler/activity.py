"""Waking StreamIsActive streams when a model's state may have changed.

One pub/sub connection per scaler process, whatever the number of streams. It listens to
Redis keyspace notifications (list, sorted-set, hash and generic events: queue lists,
lease sets, main-task hashes, the registry) and to our own activity channels, and sets the
event of every stream watching an affected model. Streams then re-read the state and send
only changes.

Keyspace notifications are off by default in Redis: at each (re)connect the hub adds the
classes it needs to ``notify-keyspace-events``, keeping what is already set. If CONFIG is
refused (managed Redis), it logs a WARNING and streams fall back to polling every
``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from oasis_keda.core import keys
from scaler.aiotools import stop_task

logger = logging.getLogger(__name__)

#: Notification classes needed: K keyspace, l list, z zset, h hash, g generic (del, expire).
NEEDED_EVENTS = "Klzhg"
RECONNECT_DELAY_S = 0.5


def merge_notify_flags(current: str, needed: str = NEEDED_EVENTS) -> str:
    """``notify-keyspace-events`` value with ``needed`` added (``A`` covers all types)."""
    flags = set(current)
    for flag in needed:
        if flag in "lzhg" and "A" in flags:
            continue
        flags.add(flag)
    return "".join(sorted(flags))


class Watch:
    """One stream's interest in one model; ``event`` is set when it should re-check."""

    def __init__(self, hub: ActivityHub, model_id: str) -> None:
        self.hub = hub
        self.model_id = model_id
        self.event = asyncio.Event()
        self.queue: str | None = None

    def follow_queue(self, queue: str) -> None:
        """Watch this queue's keys (call again when the model's queue changes)."""
        if queue != self.queue:
            self.hub._rebind(self, queue)

    async def wait(self) -> None:
        """Return when woken, or after the hub's re-check interval."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.hub.wake_interval_s):
                await self.event.wait()
        self.event.clear()


class ActivityHub:
    """The process-wide notification listener."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        poll_interval_s: float = 1.0,
        recheck_interval_s: float = 5.0,
        on_registry_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.on_registry_change = on_registry_change
        self.poll_interval_s = poll_interval_s
        self.recheck_interval_s = recheck_interval_s
        self.notifications = False
        self._db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
        self._prefix = f"__keyspace@{self._db}__:"
        self._watches: dict[str, set[Watch]] = {}
        self._key_models: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def wake_interval_s(self) -> float:
        return self.recheck_interval_s if self.notifications else self.poll_interval_s

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="activity-hub")

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once subscribed (tests and start-up use this)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)

    @contextlib.contextmanager
    def watch(self, model_id: str) -> Iterator[Watch]:
        """Register a stream's interest in a model for the ``with`` block."""
        watch = Watch(self, model_id)
        self._watches.setdefault(model_id, set()).add(watch)
        try:
            yield watch
        finally:
            self._rebind(watch, None)
            watches = self._watches.get(model_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[model_id]

    @property
    def stream_count(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def _model_keys(self, model_id: str, queue: str) -> list[str]:
        return [
            *keys.queue_lists(queue),
            keys.leases_tasks(queue),
            keys.leases_busy(queue),
            keys.main_tasks(model_id),
        ]

    def _rebind(self, watch: Watch, queue: str | None) -> None:
        # Reference-counted key -> model map; several streams may watch one model.
        if watch.queue is not None:
            for key in self._model_keys(watch.model_id, watch.queue):
                models = self._key_models.get(key, {})
                models[watch.model_id] = models.get(watch.model_id, 1) - 1
                if models[watch.model_id] <= 0:
                    del models[watch.model_id]
                if not models:
                    self._key_models.pop(key, None)
        watch.queue = queue
        if queue is not None:
            for key in self._model_keys(watch.model_id, queue):
                models = self._key_models.setdefault(key, {})
                models[watch.model_id] = models.get(watch.model_id, 0) + 1

    def _wake_model(self, model_id: str) -> None:
        for watch in self._watches.get(model_id, ()):
            watch.event.set()

    def _wake_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.event.set()

    def _dispatch(self, channel: bytes) -> None:
        name = channel.decode(errors="replace")
        if name.startswith(self._prefix):
            key = name[len(self._prefix) :]
            if key in (keys.MODELS, keys.SETTINGS):
                self.on_registry_change()
                self._wake_all()
                return
            for model_id in self._key_models.get(key, ()):
                self._wake_model(model_id)
            return
        activity_prefix = keys.activity_channel("")
        if name.startswith(activity_prefix):
            model_id = name[len(activity_prefix) :]
            if model_id in self._watches:
                self._wake_model(model_id)
            else:  # settings and unknown channels: everyone re-checks
                self.on_registry_change()
                self._wake_all()

    async def _enable_notifications(self) -> None:
        try:
            current = (await self.client.config_get("notify-keyspace-events")).get(
                "notify-keyspace-events", ""
            )
            current = current.decode() if isinstance(current, bytes) else str(current)
            wanted = merge_notify_flags(current)
            if set(wanted) != set(current):
                await self.client.config_set("notify-keyspace-events", wanted)
                logger.info("notify-keyspace-events set to %r (was %r)", wanted, current)
            self.notifications = True
        except ResponseError as exc:  # CONFIG refused or renamed; connection errors propagate
            self.notifications = False
            logger.warning(
                "cannot enable keyspace notifications (%s): StreamIsActive falls back to a "
                "%.1f s poll",
                exc,
                self.poll_interval_s,
            )

    async def _run(self) -> None:
        while True:
            pubsub: Any = None
            try:
                await self._enable_notifications()
                pubsub = self.client.pubsub()
                await pubsub.psubscribe(self._prefix + "*", keys.activity_channel("*"))
                self._connected.set()
                self._wake_all()  # anything may have changed while we were away
                while True:
                    message = await pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "pmessage":
                        self._dispatch(message["channel"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._connected.clear()
                logger.warning("activity listener lost Redis (%s); reconnecting", exc)
                self._wake_all()  # streams re-read: they report the error or the new state
                await asyncio.sleep(RECONNECT_DELAY_S)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
