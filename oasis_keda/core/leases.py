"""Task and busy leases: how the scaler knows what workers hold and run, crash-safely.

Celery's ``unacked`` hash is shared by every queue and cannot tell a reserved task from a
running one, and a counter kept by the worker is left wrong by a SIGKILL. Instead each
worker process keeps *leases* in three sorted sets per queue (see :mod:`oasis_keda.core.keys`):

* ``leases_tasks(queue)``: member ``<node>|<task_id>`` per sub-task reserved or running;
* ``leases_busy(queue)``: member ``<node>`` while the node runs a task;
* ``leases_live(queue)``: member ``<node>`` while the worker process is alive, busy or idle:
  the global worker limit counts these, so a worker counts from its own heartbeat whatever
  started it (the local runtime or Kubernetes) and until its process ends.

The score is a deadline in Redis server time (``TIME`` inside Lua), so clock skew between
pods cannot matter. A heartbeat thread pushes every deadline forward each ``ttl/3``; a
process that dies stops counting within one TTL (5 s by default), because readers count
only members whose deadline is still ahead (and trim the rest).
"""

from __future__ import annotations

import logging
import threading

import redis

from oasis_keda.core import keys

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 5.0

# KEYS: tasks zset, busy zset, live zset. ARGV: ttl_ms, node, busy (0/1), full (0/1), task members...
# Writes deadline = server now + ttl for the given members, the node's busy flag and its
# live mark. With
# full=1 the members are the node's whole set: its other members are removed.
_REFRESH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local deadline = now + ttl
local node = ARGV[2]
if ARGV[4] == '1' then
  local prefix = node .. '|'
  local mine = {}
  for i = 5, #ARGV do mine[ARGV[i]] = true end
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  for _, m in ipairs(members) do
    if string.sub(m, 1, #prefix) == prefix and not mine[m] then
      redis.call('ZREM', KEYS[1], m)
    end
  end
end
for i = 5, #ARGV do redis.call('ZADD', KEYS[1], deadline, ARGV[i]) end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], deadline, node)
else
  redis.call('ZREM', KEYS[2], node)
end
redis.call('ZADD', KEYS[3], deadline, node)
for _, k in ipairs(KEYS) do redis.call('ZREMRANGEBYSCORE', k, '-inf', now) end
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, ttl * 4) end
end
return now
"""


class LeaseKeeper:
    """Keeps one worker node's leases on one queue alive. Thread-safe.

    Call :meth:`task_reserved` when the worker takes a task off the queue,
    :meth:`task_started` when it starts running it and :meth:`task_done` when it finishes
    (success, failure or revoke). Each call writes at once; the heartbeat thread started by
    :meth:`start` keeps the deadlines ahead and repairs any write a Redis blip lost.
    """

    def __init__(
        self, client: redis.Redis, *, queue: str, node: str, ttl_s: float = DEFAULT_TTL_S
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        if "|" in node:
            raise ValueError(f"node must not contain '|': {node!r}")
        self.client = client
        self.queue = queue
        self.node = node
        self.ttl_s = ttl_s
        self._keys = [keys.leases_tasks(queue), keys.leases_busy(queue), keys.leases_live(queue)]
        self._script = client.register_script(_REFRESH_LUA)
        self._lock = threading.RLock()
        self._tasks: set[str] = set()
        self._running: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval_s(self) -> float:
        return self.ttl_s / 3

    def _member(self, task_id: str) -> str:
        return f"{self.node}|{task_id}"

    def start(self) -> None:
        """Start the daemon heartbeat thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"lease-keeper-{self.node}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and delete this node's leases, its live mark included.

        Call it as late as possible before the process ends: from then on the node no
        longer counts against the global worker limit.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.interval_s + 5)
        with self._lock:
            members = [self._member(t) for t in self._tasks]
            self._tasks.clear()
            self._running.clear()
            try:
                with self.client.pipeline(transaction=True) as pipe:
                    if members:
                        pipe.zrem(self._keys[0], *members)
                    pipe.zrem(self._keys[1], self.node)
                    pipe.zrem(self._keys[2], self.node)
                    pipe.execute()
            except redis.RedisError as exc:
                logger.warning("leases of %s on %s not deleted: %s", self.node, self.queue, exc)

    # Every write happens under self._lock together with the state it writes, so a
    # heartbeat can never resurrect a lease that task_done has just dropped.

    def task_reserved(self, task_id: str) -> None:
        """The task left the queue for this node: count it as outstanding."""
        with self._lock:
            self._tasks.add(task_id)
            self._write([self._member(task_id)], busy=bool(self._running))

    def task_started(self, task_id: str) -> None:
        """The node runs the task now: it is busy."""
        with self._lock:
            self._tasks.add(task_id)
            self._running.add(task_id)
            self._write([self._member(task_id)], busy=True)

    def task_done(self, task_id: str) -> None:
        """The task finished (whatever the outcome): drop its lease."""
        with self._lock:
            self._tasks.discard(task_id)
            self._running.discard(task_id)
            try:
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.zrem(self._keys[0], self._member(task_id))
                    if not self._running:
                        pipe.zrem(self._keys[1], self.node)
                    pipe.execute()
            except redis.RedisError as exc:
                logger.warning("lease of task %s not dropped (heartbeat will): %s", task_id, exc)

    def refresh(self) -> None:
        """Write this node's whole lease state once (what the heartbeat does)."""
        with self._lock:
            members = [self._member(t) for t in sorted(self._tasks)]
            args: list[str | int] = [self._ttl_ms, self.node, int(bool(self._running)), 1, *members]
            self._script(keys=self._keys, args=args)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    def _write(self, members: list[str], *, busy: bool) -> None:
        try:
            args: list[str | int] = [self._ttl_ms, self.node, int(busy), 0, *members]
            self._script(keys=self._keys, args=args)
        except redis.RedisError as exc:
            logger.warning("lease write for %s failed (heartbeat will retry): %s", self.node, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except redis.RedisError as exc:
                logger.warning("lease heartbeat of %s on %s failed: %s", self.node, self.queue, exc)
            except Exception:  # never let the heartbeat die: the node would stop counting
                logger.exception("lease heartbeat of %s crashed; retrying", self.node)
            self._stop.wait(self.interval_s)


def live_count(client: redis.Redis, queue: str) -> int:
    """The worker processes alive on ``queue`` now (their live lease not yet expired)."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return int(client.zcount(keys.leases_live(queue), now_ms, "+inf"))
