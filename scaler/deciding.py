"""From a state snapshot to each model's decision: strategy, busy floor, global budget.

The thin layer between the I/O (:mod:`scaler.state`) and the pure rules
(:mod:`scaler.strategies`, :mod:`scaler.budget`). Used by the gRPC service and by
``oasis-keda status``, so both show the same numbers. Logs one INFO line when a model's
decision changes, with its inputs; unchanged decisions go to DEBUG.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref

from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.errors import ModelNotFoundError
from scaler.budget import Demand, allocate
from scaler.errors import RegistryNotLoadedError, StoredConfigError
from scaler.state import Snapshot, StateReader
from scaler.strategies import ModelState, desired_workers

logger = logging.getLogger(__name__)


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

    @property
    def active(self) -> bool:
        return self.desired > 0


class Decider:
    """Turns snapshots into decisions; remembers the last one per model for logging."""

    def __init__(self, reader: StateReader) -> None:
        self.reader = reader
        self._last: dict[str, int] = {}
        # Budget results per snapshot: computed once, shared by all callers of one read.
        self._granted: weakref.WeakKeyDictionary[Snapshot, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )

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
        decision = self._decision(snapshot, model_id)
        self._log(decision)
        return decision

    async def decide_all(self) -> list[Decision]:
        """Decisions for every registered model, ordered by model id."""
        snapshot = await self.reader.read_all(fresh=True)
        for model_id, reason in sorted(snapshot.broken.items()):
            logger.warning("model %s left out: %s", model_id, reason)
        return [self._decision(snapshot, m) for m in sorted(snapshot.models)]

    def _decision(self, snapshot: Snapshot, model_id: str) -> Decision:
        view = snapshot.models[model_id]
        wanted = desired_workers(view.config, view.state)
        desired = wanted
        if snapshot.limit is not None:
            desired = self._budget(snapshot)[model_id]
        return Decision(
            model_id=model_id,
            queue=view.queue,
            config=view.config,
            state=view.state,
            wanted=wanted,
            desired=desired,
            limit=snapshot.limit,
        )

    def _budget(self, snapshot: Snapshot) -> dict[str, int]:
        granted = self._granted.get(snapshot)
        if granted is None:
            demands = [
                Demand(
                    model_id=view.model_id,
                    desired=desired_workers(view.config, view.state),
                    busy=view.state.busy,
                    priority=view.state.priority,
                )
                for view in snapshot.models.values()
            ]
            granted = self._granted[snapshot] = allocate(demands, snapshot.limit)
        return granted

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
            "reserved/running %d, main tasks %d, busy %d, priority %d, before budget %d, "
            "global limit %s)",
            d.model_id, d.queue, "?" if previous is None else previous, d.desired,
            d.config.scaling_strategy.value, s.waiting, s.reserved, s.main_tasks, s.busy,
            s.priority, d.wanted, "none" if d.limit is None else d.limit,
        )  # fmt: skip
