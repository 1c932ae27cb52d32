"""Prompt redelivery of sub-tasks whose worker died, and repair of the scaler's main-task HASH.

With the Redis transport and ``acks_late``, a message a worker has taken sits in Celery's
``unacked`` HASH until acked; if the worker is SIGKILLed, kombu puts it back only after its
``visibility_timeout`` (1 h by default). Workers keep a lease per task they hold
(:mod:`oasis_keda.core.leases`), so the janitor can tell a dead holder from a live one: it
restores a message of a model queue once it has been unacked longer than a grace period
(covering the moment between the worker's fetch and its first lease write) and no live lease
names its task id. The check and the move are one Lua script, so a message that a live
worker holds (or has just acked) is never duplicated. A re-run chunk overwrites its own
output atomically, so the result is the same as a fault-free run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis

from oasis_keda.core import keys

logger = logging.getLogger(__name__)

UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
#: Covers the moment between a worker's fetch and its first lease write (milliseconds).
DEFAULT_GRACE_S = 5.0
#: With the 5 s lease TTL: a killed worker's task is queued again within about 6 s.
DEFAULT_INTERVAL_S = 1.0

# KEYS: unacked hash, unacked index zset, task leases zset, target list.
# ARGV: delivery tag, raw unacked value seen, task id, message to push, cut-off (unix s).
# 1 restored; 0 gone or changed (acked meanwhile); -1 too recent; -2 a live lease holds it.
_RESTORE_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw ~= ARGV[2] then return 0 end
local since = redis.call('ZSCORE', KEYS[2], ARGV[1])
if since and tonumber(since) > tonumber(ARGV[5]) then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local suffix = '|' .. ARGV[3]
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], now, '+inf')) do
  if string.sub(m, -#suffix) == suffix then return -2 end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[4])
return 1
"""


def priority_list(queue: str, priority: Any) -> str:
    """The Redis list kombu keeps a message of this priority in (as kombu's ``_q_for_pri``)."""
    try:
        value = min(max(int(priority), 0), 9)
    except (TypeError, ValueError):
        value = 0
    step = max(s for s in keys.PRIORITY_STEPS if s <= value)
    return queue if step == 0 else f"{queue}{keys.PRIORITY_SEP}{step}"


class Janitor:
    """Restores abandoned sub-task messages; repairs main tasks. One per controller."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        queues: Callable[[], Iterable[str]],
        reconcile: Callable[[], None] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.client = client
        self.queues = queues
        self.reconcile = reconcile
        self.grace_s = grace_s
        self.interval_s = interval_s
        self._script = client.register_script(_RESTORE_LUA)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore_abandoned(self) -> int:
        """One sweep over the unacked messages of the model queues; returns how many moved."""
        queues = set(self.queues())
        if not queues:
            return 0
        cutoff = time.time() - self.grace_s
        tags = cast(list[bytes], self.client.zrangebyscore(UNACKED_INDEX, "-inf", cutoff))
        restored = 0
        for tag in tags:
            raw = self.client.hget(UNACKED, tag)
            if raw is None:
                continue
            try:
                message, _exchange, routing_key = json.loads(raw)
                task_id = message["headers"]["id"]
            except (ValueError, KeyError, TypeError):
                continue
            if routing_key not in queues:
                continue
            message["headers"]["redelivered"] = True
            message.setdefault("properties", {}).setdefault("delivery_info", {})["redelivered"] = (
                True
            )
            target = priority_list(routing_key, message["properties"].get("priority"))
            outcome = self._script(
                keys=[UNACKED, UNACKED_INDEX, keys.leases_tasks(routing_key), target],
                args=[tag, raw, task_id, json.dumps(message), cutoff],
            )
            if outcome == 1:
                restored += 1
                logger.warning(
                    "restored task %s to %s: its worker holds no live lease",
                    task_id,
                    keys.display_list(target),
                )
        return restored

    def sweep(self) -> None:
        try:
            self.restore_abandoned()
        except redis.RedisError as exc:
            logger.warning("janitor: restore sweep failed: %s", exc)
        if self.reconcile is not None:
            try:
                self.reconcile()
            except Exception:
                logger.exception("janitor: main-task reconciliation failed")

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="janitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sweep()
