"""From a state snapshot to each model's decision: strategy, busy floor, global budget.

The thin layer between the I/O (:mod:`scaler.state`) and the pure rules
(:mod:`scaler.strategies`, :mod:`scaler.budget`). Used by the gRPC service and by
``oasis-keda status``, so both show the same numbers. Logs one INFO line when a model's
decision changes, with its inputs; unchanged decisions go to DEBUG.

Under a global limit the answers are the budget's *grants*, which are stored in Redis
(``keys.BUDGET_GRANTS``) before any of them is answered, with a compare-and-set on a
version field: a restarted scaler, or a second replica, continues from the grants given,
never from zero, so the ceiling holds across restarts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import weakref

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from oasis_keda.core import keys
from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.errors import BrokerUnavailableError, ModelNotFoundError
from scaler.budget import Demand, Grants, grant, pending_raise
from scaler.errors import RegistryNotLoadedError, StoredConfigError
from scaler.state import Snapshot, StateReader
from scaler.strategies import ModelState, desired_workers

logger = logging.getLogger(__name__)

#: Seconds a raised grant counts as held while its workers start (a pod's scheduling,
#: image pull and start); they count themselves once their heartbeat is in.
DEFAULT_START_ALLOWANCE_S = 60.0

# KEYS: grants hash. ARGV: expected version ("" for none), JSON {"set": {...}, "del": [...]}.
_WRITE_GRANTS_LUA = """
local v = redis.call('HGET', KEYS[1], '~version') or ''
if v ~= ARGV[1] then return 0 end
local ch = cjson.decode(ARGV[2])
for k, val in pairs(ch.set) do redis.call('HSET', KEYS[1], k, val) end
for _, k in ipairs(ch.del) do redis.call('HDEL', KEYS[1], k) end
redis.call('HINCRBY', KEYS[1], '~version', 1)
return 1
"""
_WRITE_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    """What the scaler answers for one model, with the inputs that produced it."""

    model_id: str
    queue: str
    config: ScalingConfig
    state: ModelState
    wanted: int
    """Desired workers from the strategy and the busy floor, before the global budget."""
    desired: int
    """Desired workers after the global budget: the metric KEDA gets."""
    limit: int | None
    share: int | None = None
    """The model's fair share of the limit (``desired`` reaches it as capacity frees)."""

    @property
    def active(self) -> bool:
        return self.desired > 0


class Decider:
    """Turns snapshots into decisions; remembers the last one per model for logging.

    ``record_grants=False`` (``oasis-keda status``) computes the budget without storing it:
    it shows what the scaler would answer, and changes nothing.
    """

    def __init__(
        self,
        reader: StateReader,
        *,
        start_allowance_s: float = DEFAULT_START_ALLOWANCE_S,
        record_grants: bool = True,
    ) -> None:
        self.reader = reader
        self.start_allowance_ms = round(start_allowance_s * 1000)
        self.record_grants = record_grants
        self._last: dict[str, int] = {}
        self._write = reader.client.register_script(_WRITE_GRANTS_LUA)
        self._lock = asyncio.Lock()
        # Budget results per snapshot: computed once, shared by all callers of one read.
        self._budgets: weakref.WeakKeyDictionary[Snapshot, Grants] = weakref.WeakKeyDictionary()

    async def decide(self, model_id: str, *, fresh: bool = False) -> Decision:
        """The decision for one model; raises ModelNotFoundError, RegistryNotLoadedError,
        StoredConfigError or BrokerUnavailableError. ``fresh``: from a read started after this call."""
        snapshot = await self.reader.read(model_id, fresh=fresh)
        if model_id in snapshot.broken:
            raise StoredConfigError(snapshot.broken[model_id])
        if model_id not in snapshot.models:
            if not await self.reader.registry_loaded():
                raise RegistryNotLoadedError(
                    f"model {model_id!r} is not in the registry cache, which Redis lost and "
                    "the controller has not rebuilt yet"
                )
            raise ModelNotFoundError(model_id)
        decision = await self._decision(snapshot, model_id)
        self._log(decision)
        return decision

    async def decide_all(self) -> list[Decision]:
        """Decisions for every registered model, ordered by model id."""
        snapshot = await self.reader.read_all(fresh=True)
        for model_id, reason in sorted(snapshot.broken.items()):
            logger.warning("model %s left out: %s", model_id, reason)
        return [await self._decision(snapshot, m) for m in sorted(snapshot.models)]

    async def _decision(self, snapshot: Snapshot, model_id: str) -> Decision:
        view = snapshot.models[model_id]
        wanted = desired_workers(view.config, view.state)
        desired, share = wanted, None
        if snapshot.limit is not None:
            budget = await self._budget(snapshot)
            if model_id in budget.granted:
                desired = budget.granted[model_id]
                share = budget.shares.get(model_id, 0)
        return Decision(
            model_id=model_id,
            queue=view.queue,
            config=view.config,
            state=view.state,
            wanted=wanted,
            desired=desired,
            limit=snapshot.limit,
            share=share,
        )

    async def _budget(self, snapshot: Snapshot) -> Grants:
        budget = self._budgets.get(snapshot)
        if budget is not None:
            return budget
        async with self._lock:
            budget = self._budgets.get(snapshot)
            if budget is None:
                budget = await self._settle(snapshot)
                self._budgets[snapshot] = budget
        return budget

    async def _settle(self, snapshot: Snapshot) -> Grants:
        """The grants for ``snapshot``, stored before they are answered."""
        current = snapshot
        for _ in range(_WRITE_ATTEMPTS):
            if current.limit is None:  # the limit was removed meanwhile
                return Grants(granted={}, raised={}, shares={})
            budget = compute_grants(current)
            if not self.record_grants or await self._store(current, budget):
                return budget
            # Another writer came first: its grants are in a fresh read.
            current = await self.reader.read_all(fresh=True)
        logger.warning("budget grants changed under every attempt; answering the stored ones")
        return stored_grants(current)

    async def _store(self, snapshot: Snapshot, budget: Grants) -> bool:
        changes = grant_changes(snapshot, budget, self.start_allowance_ms)
        if changes is None:
            return True
        version = snapshot.grants.get(keys.BUDGET_VERSION_FIELD, "")
        client: aioredis.Redis = self.reader.client
        try:
            async with asyncio.timeout(self.reader.timeout_s):
                written = await self._write(
                    keys=[keys.BUDGET_GRANTS], args=[version, json.dumps(changes)], client=client
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis unreachable: {exc or type(exc).__name__}") from exc
        if written:
            self.reader.invalidate()  # the cached snapshot holds the old grants
        return bool(written)

    def _log(self, d: Decision) -> None:
        previous = self._last.get(d.model_id)
        if previous == d.desired:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("model %s: desired %d (unchanged)", d.model_id, d.desired)
            return
        self._last[d.model_id] = d.desired
        s = d.state
        logger.info(
            "model %s queue %s: desired workers %s -> %d (strategy %s, waiting %d, "
            "reserved/running %d, main tasks %d, busy %d, live %d, priority %d, "
            "before budget %d, share %s, global limit %s)",
            d.model_id, d.queue, "?" if previous is None else previous, d.desired,
            d.config.scaling_strategy.value, s.waiting, s.reserved, s.main_tasks, s.busy,
            s.live, s.priority, d.wanted, "-" if d.share is None else d.share,
            "none" if d.limit is None else d.limit,
        )  # fmt: skip


def demands(snapshot: Snapshot) -> list[Demand]:
    """Each registered model's demand on the budget, from one snapshot."""
    out = []
    for view in snapshot.models.values():
        live = view.state.live
        out.append(
            Demand(
                model_id=view.model_id,
                wanted=desired_workers(view.config, view.state),
                priority=view.state.priority,
                waiting_since_ms=view.state.waiting_since_ms,
                live=live,
                granted=_int(snapshot.grants.get(view.model_id)),
                raised=pending_raise(
                    snapshot.grants.get(keys.BUDGET_RAISE_PREFIX + view.model_id),
                    live=live,
                    now_ms=snapshot.now_ms,
                ),
            )
        )
    return out


def compute_grants(snapshot: Snapshot) -> Grants:
    if snapshot.limit is None:
        raise ValueError("no global limit: nothing to grant")
    return grant(demands(snapshot), snapshot.limit)


def stored_grants(snapshot: Snapshot) -> Grants:
    """The grants as stored (what another writer decided), shares unknown (0)."""
    granted = {m: _int(snapshot.grants.get(m)) for m in snapshot.models}
    return Grants(granted=granted, raised={}, shares=dict.fromkeys(granted, 0))


def grant_changes(
    snapshot: Snapshot, budget: Grants, start_allowance_ms: int
) -> dict[str, object] | None:
    """The fields to write for ``budget`` (``None`` when the stored grants are the same)."""
    stored = snapshot.grants
    to_set: dict[str, str] = {}
    to_del: list[str] = []
    for model_id, count in budget.granted.items():
        if stored.get(model_id) != str(count):
            to_set[model_id] = str(count)
    until = snapshot.now_ms + start_allowance_ms
    for model_id, count in budget.raised.items():
        to_set[keys.BUDGET_RAISE_PREFIX + model_id] = f"{count}:{until}"
    for field in stored:
        if field == keys.BUDGET_VERSION_FIELD or field in to_set:
            continue
        if field.startswith(keys.BUDGET_RAISE_PREFIX):
            model_id = field[len(keys.BUDGET_RAISE_PREFIX) :]
            view = snapshot.models.get(model_id)
            live = view.state.live if view is not None else 0
            if not pending_raise(stored[field], live=live, now_ms=snapshot.now_ms):
                to_del.append(field)
        elif field not in snapshot.models:
            to_del.append(field)  # an unregistered model holds nothing
    if not to_set and not to_del:
        return None
    return {"set": to_set, "del": to_del}


def _int(raw: str | None) -> int:
    try:
        return max(0, int(raw)) if raw is not None else 0
    except ValueError:
        return 0
