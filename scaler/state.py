"""Reading models' live queue state from Redis: one EVALSHA per call.

One Lua script reads, atomically and in one round trip: the global worker limit; the
model's record (queue and scaling configuration); the waiting messages of every priority
list of its Celery queue; its live task and busy leases (counted against Redis server
time, expired ones trimmed); and its main tasks in progress with their highest priority.
When a global limit is set the script reads every registered model the same way, because
the budget needs them all; concurrent callers then share one read (:mod:`scaler.singleflight`).

Key names come from :mod:`oasis_keda.keys`: the script gets them as prefix/suffix pairs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from oasis_keda import keys
from oasis_keda.config import ScalingConfig, parse_config
from oasis_keda.errors import BrokerUnavailableError, ConfigError
from scaler.errors import StoredConfigError
from scaler.singleflight import SingleFlight
from scaler.strategies import ModelState

logger = logging.getLogger(__name__)

_MARK = "\x00Q\x00"

# KEYS: models hash, settings hash. ARGV: limit field, model id ('' = all), priority sep,
# then prefix/suffix pairs for leases_tasks, leases_busy, main_tasks, then priority steps.
# Reply: {limit or false, {row, ...}}; row = {id, queue, scaling json, tasks, busy, main,
# main max priority, llen per step...}; a row for a record that cannot be decoded is {id}.
_STATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = redis.call('HGET', KEYS[2], ARGV[1])
local sep = ARGV[3]
local function row(model_id, raw)
  local ok, rec = pcall(cjson.decode, raw)
  if not ok or type(rec) ~= 'table' or type(rec.queue) ~= 'string' then return {model_id} end
  local q = rec.queue
  local scaling = rec.scaling
  if type(scaling) ~= 'table' then scaling = {} end
  local tk = ARGV[4] .. q .. ARGV[5]
  local bk = ARGV[6] .. q .. ARGV[7]
  redis.call('ZREMRANGEBYSCORE', tk, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', bk, '-inf', now)
  local mains = redis.call('HVALS', ARGV[8] .. model_id .. ARGV[9])
  local maxp = 0
  for _, v in ipairs(mains) do
    local n = tonumber(v)
    if n and n > maxp then maxp = n end
  end
  local r = {model_id, q, cjson.encode(scaling), redis.call('ZCARD', tk),
             redis.call('ZCARD', bk), #mains, math.floor(maxp)}
  for i = 10, #ARGV do
    local key = q
    if ARGV[i] ~= '0' then key = q .. sep .. ARGV[i] end
    r[#r + 1] = redis.call('LLEN', key)
  end
  return r
end
local rows = {}
if limit or ARGV[2] == '' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do rows[#rows + 1] = row(all[i], all[i + 1]) end
else
  local raw = redis.call('HGET', KEYS[1], ARGV[2])
  if raw then rows[1] = row(ARGV[2], raw) end
end
return {limit, rows}
"""


def _split(template: str) -> list[str]:
    pre, post = template.split(_MARK)
    return [pre, post]


def _script_args(model_id: str) -> list[str]:
    return [
        keys.SETTING_GLOBAL_WORKER_LIMIT,
        model_id,
        keys.PRIORITY_SEP,
        *_split(keys.leases_tasks(_MARK)),
        *_split(keys.leases_busy(_MARK)),
        *_split(keys.main_tasks(_MARK)),
        *(str(p) for p in keys.PRIORITY_STEPS),
    ]


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
    complete: bool
    """True when every registered model was read (always so when a limit is set)."""


def make_client(redis_url: str, *, timeout_s: float) -> aioredis.Redis:
    """An asyncio Redis client that fails fast: no retries, short socket timeouts."""
    return aioredis.Redis.from_url(
        redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


class StateReader:
    """Reads :class:`Snapshot` s; concurrent identical reads are coalesced."""

    def __init__(self, client: aioredis.Redis, *, timeout_s: float = 1.0) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._script = client.register_script(_STATE_LUA)
        self._flights: dict[str, SingleFlight[Snapshot]] = {}
        self._configs: dict[bytes, ScalingConfig] = {}
        self._limit_seen = False

    async def ping(self) -> None:
        """Raise BrokerUnavailableError unless Redis answers within the timeout."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis unreachable: {exc or type(exc).__name__}") from exc

    async def read(self, model_id: str) -> Snapshot:
        """State of ``model_id`` (and of every model when a global limit is set)."""
        key = "" if self._limit_seen else model_id
        snapshot = await self._flight(key)()
        return snapshot

    async def read_all(self) -> Snapshot:
        """State of every registered model."""
        return await self._flight("")()

    def _flight(self, key: str) -> SingleFlight[Snapshot]:
        flight = self._flights.get(key)
        if flight is None:
            if len(self._flights) > 10_000:
                self._flights.clear()
            flight = self._flights[key] = SingleFlight(lambda: self._read(key))
        return flight

    async def _read(self, model_id: str) -> Snapshot:
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._script(
                    keys=[keys.MODELS, keys.SETTINGS], args=_script_args(model_id)
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis unreachable: {exc or type(exc).__name__}") from exc
        return self._parse(reply, complete=True if model_id == "" else None)

    def _parse(self, reply: Any, *, complete: bool | None) -> Snapshot:
        raw_limit, rows = reply
        limit = None if raw_limit is None else int(raw_limit)
        self._limit_seen = limit is not None
        models: dict[str, ModelView] = {}
        for row in rows:
            model_id = row[0].decode()
            if len(row) == 1:
                raise StoredConfigError(f"model {model_id!r}: stored record is not readable")
            models[model_id] = ModelView(
                model_id=model_id,
                queue=row[1].decode(),
                config=self._config(model_id, row[2]),
                state=_state(row),
            )
        return Snapshot(limit=limit, models=models, complete=bool(complete) or limit is not None)

    def _config(self, model_id: str, raw: bytes) -> ScalingConfig:
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
    tasks, busy, mains, main_priority = (int(v) for v in row[3:7])
    by_step = [int(v) for v in row[7:]]
    priority = min(10, main_priority) if main_priority > 0 else priority_from_lists(by_step)
    return ModelState(
        waiting=sum(by_step), reserved=tasks, busy=busy, main_tasks=mains, priority=priority
    )
