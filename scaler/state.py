"""Reading models' live queue state from Redis: one EVALSHA per read.

One Lua script reads, atomically and in one round trip: the global worker limit; each
model's record (queue and scaling configuration); the waiting messages of every priority
list of its Celery queue; its live task and busy leases (counted against Redis server
time; a read of single models also trims expired ones), its live workers; its planned work not finished; and its main
tasks in progress with their highest priority and oldest request time. When a global limit
is set the script reads every registered model and the budget's grants, because the budget
needs them all. The reply is one JSON string (redis-py parses a
bulk string far faster than nested arrays).

Key names come from :mod:`oasis_keda.core.keys`: the script gets them as prefix/suffix pairs.
(The script touches keys it is not given in KEYS, so it does not run on Redis Cluster.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from oasis_keda.core import keys
from oasis_keda.core.config import ScalingConfig, parse_config
from oasis_keda.core.errors import BrokerUnavailableError, ConfigError
from scaler.errors import StoredConfigError
from scaler.singleflight import SingleFlight, settle
from scaler.strategies import ModelState

logger = logging.getLogger(__name__)

_MARK = "\x00Q\x00"

# KEYS: models hash, settings hash, grants hash. ARGV[1]: JSON of the key layout (limit
# field, priority separator and steps, prefix/suffix pairs of leases_tasks, leases_busy,
# leases_live and main_tasks; one
# argument because redis-py encodes each argument in Python), then the model ids to read
# (none = every model; every model anyway when a limit is set).
# Reply: JSON [limit or "", [row, ...], grants (flat field/value list, under a limit), now ms];
# row = [id, queue, scaling json, tasks, busy, main, main max priority, live, oldest main
# request ms (0 none), planned not finished, llen per step...]; a row for a record that cannot be decoded is [id].
_STATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = cjson.decode(ARGV[1])
local limit = redis.call('HGET', KEYS[2], cfg.limit)
local sep = cfg.sep
local single = not limit and #ARGV >= 2
local function row(model_id, raw)
  local ok, rec = pcall(cjson.decode, raw)
  if not ok or type(rec) ~= 'table' or type(rec.queue) ~= 'string' then return {model_id} end
  local q = rec.queue
  local scaling = rec.scaling
  if type(scaling) ~= 'table' then scaling = {} end
  local tk = cfg.tasks[1] .. q .. cfg.tasks[2]
  local bk = cfg.busy[1] .. q .. cfg.busy[2]
  local lk = cfg.live[1] .. q .. cfg.live[2]
  if single then  -- trim here; a read of every model only counts (keepers trim too)
    redis.call('ZREMRANGEBYSCORE', tk, '-inf', now)
    redis.call('ZREMRANGEBYSCORE', bk, '-inf', now)
  end
  local mains = redis.call('HVALS', cfg.main[1] .. model_id .. cfg.main[2])
  local maxp, oldest = 0, 0
  for _, v in ipairs(mains) do  -- "<priority>:<requested ms>"
    local p, at = string.match(v, '^(%d+):?(%d*)$')
    local n, ms = tonumber(p), tonumber(at)
    if n and n > maxp then maxp = n end
    if ms and ms > 0 and (oldest == 0 or ms < oldest) then oldest = ms end
  end
  local r = {model_id, q, cjson.encode(scaling),
             redis.call('ZCOUNT', tk, '(' .. now, '+inf'),
             redis.call('ZCOUNT', bk, '(' .. now, '+inf'), #mains, math.floor(maxp),
             redis.call('ZCOUNT', lk, '(' .. now, '+inf'), oldest, 0}
  local planned = 0
  for _, v in ipairs(redis.call('HVALS', cfg.planned[1] .. model_id .. cfg.planned[2])) do
    local n = tonumber(v)
    if n and n > 0 then planned = planned + n end
  end
  r[#r] = planned
  for _, step in ipairs(cfg.steps) do
    local key = q
    if step ~= '0' then key = q .. sep .. step end
    r[#r + 1] = redis.call('LLEN', key)
  end
  return r
end
local rows = {}
if not single then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do rows[#rows + 1] = row(all[i], all[i + 1]) end
else
  for i = 2, #ARGV do
    local raw = redis.call('HGET', KEYS[1], ARGV[i])
    if raw then rows[#rows + 1] = row(ARGV[i], raw) end
  end
end
local grants = {}
if limit then grants = redis.call('HGETALL', KEYS[3]) end
-- One string: redis-py parses a flat bulk string far faster than nested arrays.
return cjson.encode({limit or '', rows, grants, now})
"""


def _split(template: str) -> list[str]:
    pre, post = template.split(_MARK)
    return [pre, post]


def _layout() -> bytes:
    return json.dumps(
        {
            "limit": keys.SETTING_GLOBAL_WORKER_LIMIT,
            "sep": keys.PRIORITY_SEP,
            "steps": [str(p) for p in keys.PRIORITY_STEPS],
            "tasks": _split(keys.leases_tasks(_MARK)),
            "busy": _split(keys.leases_busy(_MARK)),
            "live": _split(keys.leases_live(_MARK)),
            "main": _split(keys.main_tasks(_MARK)),
            "planned": _split(keys.planned(_MARK)),
        }
    ).encode()


_LAYOUT = _layout()
_SCRIPT_KEYS = (keys.MODELS, keys.SETTINGS, keys.BUDGET_GRANTS)


def priority_from_lists(waiting_by_step: Sequence[int]) -> int:
    """Priority 1-10 implied by the highest non-empty Celery priority list, 0 if all empty.

    kombu's Redis transport serves step 0 first; analysis priorities run 10 (highest) to 1,
    so step s maps to ``10 - s`` (0 -> 10, 3 -> 7, 6 -> 4, 9 -> 1).
    """
    for step, count in zip(keys.PRIORITY_STEPS, waiting_by_step, strict=True):
        if count > 0:
            return max(1, 10 - step)
    return 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelView:
    """One model as read: its id, queue, scaling configuration and live state."""

    model_id: str
    queue: str
    config: ScalingConfig
    state: ModelState


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)  # identity hash: memo key
class Snapshot:
    """The result of one read: the global limit and the models read."""

    limit: int | None
    models: dict[str, ModelView]
    broken: dict[str, str]
    """Models whose stored record could not be read, with the reason (left out of ``models``)."""
    complete: bool
    """True when every registered model was read (always so when a limit is set)."""
    read_at: float
    """Monotonic time at which the read started."""
    grants: dict[str, str] = dataclasses.field(default_factory=dict)
    """The budget's stored grants hash (under a limit), fields and values as strings."""
    now_ms: int = 0
    """Redis server time of the read, ms."""


CLIENT_NAME = "oasis-keda-scaler"


def make_client(redis_url: str, *, timeout_s: float) -> aioredis.Redis:
    """An asyncio Redis client that fails fast: no retries, short socket timeouts."""
    return aioredis.Redis.from_url(
        redis_url,
        client_name=CLIENT_NAME,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


class StateReader:
    """Reads :class:`Snapshot` s from Redis, one EVALSHA per read.

    Reads of one key (a model id, or "" for every model) are coalesced
    (:mod:`scaler.singleflight`). When a global limit is set every answer needs every
    model, and a read of 500 models costs Redis several milliseconds; so non-fresh reads
    are then served from a snapshot at most ``max_age_s`` old, refreshed in the background
    once older than ``refresh_s`` (KEDA polls every 15-30 s: a sub-second age is harmless).
    ``fresh=True`` (streams woken by a notification) always waits for a read that started
    after the call.

    Without a limit, reads of single models are batched: the models asked for while the
    previous batch is in flight are read together by one EVALSHA, which then answers every
    caller (at most one round trip per call, far fewer under load; a batch not yet sent is
    always fresh).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        timeout_s: float = 1.0,
        refresh_s: float = 0.8,
        max_age_s: float = 1.0,
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self._script = client.register_script(_STATE_LUA)
        self._flights: dict[str, SingleFlight[Snapshot]] = {}
        self._configs: dict[str, ScalingConfig] = {}
        self._limit_seen = False
        self._all: Snapshot | None = None
        self._refreshing: asyncio.Task[Snapshot] | None = None
        self._batch: tuple[set[str], asyncio.Future[Snapshot]] | None = None
        self._batch_in_flight = False

    async def ping(self) -> None:
        """Raise BrokerUnavailableError unless Redis answers within the timeout."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis unreachable: {exc or type(exc).__name__}") from exc

    async def registry_loaded(self) -> bool:
        """Whether the registry cache is whole (``keys.REGISTRY_LOADED``); raises
        BrokerUnavailableError unless Redis answers within the timeout."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self.client.exists(keys.REGISTRY_LOADED))
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis unreachable: {exc or type(exc).__name__}") from exc

    def invalidate(self) -> None:
        """Drop the cached all-model snapshot (the registry or a setting changed)."""
        self._all = None

    async def read(self, model_id: str, *, fresh: bool = False) -> Snapshot:
        """State of ``model_id`` (and of every model when a global limit is set)."""
        if self._limit_seen:
            return await self.read_all(fresh=fresh)
        if self._batch is None:
            self._batch = (set(), asyncio.get_running_loop().create_future())
            if not self._batch_in_flight:
                asyncio.get_running_loop().call_soon(self._send_batch)
        ids, future = self._batch
        ids.add(model_id)
        return await asyncio.shield(future)

    def _send_batch(self) -> None:
        # One batch in flight at a time: callers arriving meanwhile gather in the next one,
        # sent when this one returns, so the busier the scaler the fewer reads per call.
        if self._batch is None or self._batch_in_flight:
            return
        ids, future = self._batch
        self._batch = None
        self._batch_in_flight = True
        task = asyncio.ensure_future(self._read(tuple(sorted(ids))))
        task.add_done_callback(lambda done: self._batch_done(done, future))

    def _batch_done(self, task: asyncio.Future[Snapshot], future: asyncio.Future[Snapshot]) -> None:
        self._batch_in_flight = False
        settle(future, task)
        if self._batch is None:
            return
        if not task.cancelled() and task.exception() is not None:
            # Redis failed after the waiting callers had called: answer them now rather
            # than spend another timeout (UNAVAILABLE must come within 2 s).
            _, waiting = self._batch
            self._batch = None
            settle(waiting, task)
        else:
            self._send_batch()

    async def read_all(self, *, fresh: bool = True) -> Snapshot:
        """State of every registered model."""
        cached = self._all
        if not fresh and cached is not None:
            age = time.monotonic() - cached.read_at
            if age <= self.max_age_s:
                if age > self.refresh_s and self._refreshing is None:
                    self._refreshing = asyncio.ensure_future(self._flight("")())
                    self._refreshing.add_done_callback(self._refreshed)
                return cached
        return await self._flight("")(fresh=fresh)

    def _refreshed(self, task: asyncio.Task[Snapshot]) -> None:
        self._refreshing = None
        if not task.cancelled() and task.exception() is not None:
            logger.debug("background refresh failed: %s", task.exception())

    def _flight(self, key: str) -> SingleFlight[Snapshot]:
        flight = self._flights.get(key)
        if flight is None:
            if len(self._flights) > 10_000:
                self._flights.clear()
            flight = self._flights[key] = SingleFlight(lambda: self._read(()))
        return flight

    async def _read(self, model_ids: tuple[str, ...]) -> Snapshot:
        """One EVALSHA: the given models, or every model (``()`` or a limit is set)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._script(keys=_SCRIPT_KEYS, args=(_LAYOUT, *model_ids))
        except (RedisError, OSError, TimeoutError) as exc:
            self._all = None  # never serve a snapshot across an outage
            raise BrokerUnavailableError(f"Redis unreachable: {exc or type(exc).__name__}") from exc
        snapshot = self._parse(reply, started=started, all_models=not model_ids)
        if snapshot.complete:
            self._all = snapshot
        return snapshot

    def _parse(self, reply: bytes, *, started: float, all_models: bool) -> Snapshot:
        raw_limit, rows, flat_grants, now_ms = json.loads(reply)
        limit = None if raw_limit == "" else int(raw_limit)
        self._limit_seen = limit is not None
        models: dict[str, ModelView] = {}
        broken: dict[str, str] = {}
        for row in rows or ():  # cjson encodes an empty table as {}
            model_id = row[0]
            try:
                if len(row) == 1:
                    raise StoredConfigError(f"model {model_id!r}: stored record is not readable")
                models[model_id] = ModelView(
                    model_id=model_id,
                    queue=row[1],
                    config=self._config(model_id, row[2]),
                    state=_state(row),
                )
            except StoredConfigError as exc:
                broken[model_id] = str(exc)
        return Snapshot(
            limit=limit,
            models=models,
            broken=broken,
            complete=all_models or limit is not None,
            read_at=started,
            grants=dict(zip(flat_grants[::2], flat_grants[1::2], strict=True))
            if flat_grants
            else {},
            now_ms=int(now_ms),
        )

    def _config(self, model_id: str, raw: str) -> ScalingConfig:
        config = self._configs.get(raw)
        if config is None:
            try:
                config = parse_config(ScalingConfig, json.loads(raw))
            except (ConfigError, ValueError) as exc:
                raise StoredConfigError(f"model {model_id!r}: stored scaling: {exc}") from exc
            if len(self._configs) > 10_000:
                self._configs.clear()
            self._configs[raw] = config
        return config


def _state(row: Sequence[Any]) -> ModelState:
    tasks, busy, mains, main_priority, live, oldest, planned = (int(v) for v in row[3:10])
    by_step = [int(v) for v in row[10:]]
    priority = min(10, main_priority) if main_priority > 0 else priority_from_lists(by_step)
    return ModelState(
        waiting=sum(by_step),
        reserved=tasks,
        busy=busy,
        main_tasks=mains,
        priority=priority,
        live=live,
        waiting_since_ms=oldest or None,
        planned=planned,
    )
