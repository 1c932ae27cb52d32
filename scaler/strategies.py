"""Desired workers for one model: the Oasis v2 scaling formulas (docs/SCALER.md).

Pure: (scaling configuration, model state) -> desired workers. No Redis, gRPC or clock here,
so every rule is a table-driven unit test. With ``count_planned``, DYNAMIC_TASKS counts the
planned sub-tasks not finished (a stage's whole size from the moment it is planned, and the
next stage of a generate-and-run) instead of only the queued and running ones. Two rules
beyond the Oasis formulas:

* while any work is in progress the answer is at least 1 (unless ``worker_count_max`` is 0):
  a QUEUE_LOAD model whose queue holds sub-tasks sent by a foreign Celery client, or a
  DYNAMIC_TASKS model between two stages, must not be left without a worker;
* the busy floor: never fewer workers than are busy right now, so a scale-down waits for
  running work to drain instead of stranding it (this floor is above every cap).
"""

from __future__ import annotations

import dataclasses
import math

from oasis_keda.core.config import ScalingConfig, ScalingStrategy


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelState:
    """A model's live queue state, as read from Redis in one round trip."""

    waiting: int = 0
    """Messages waiting in the model's Celery queue, every priority list summed."""
    reserved: int = 0
    """Sub-tasks reserved or running on a worker (live task leases)."""
    busy: int = 0
    """Workers running a task right now (live busy leases)."""
    main_tasks: int = 0
    """Analysis stages (main tasks) in progress for this model."""
    priority: int = 0
    """Highest analysis priority in progress, 1-10 (10 highest); 0 when none is known."""
    live: int = 0
    """Worker processes alive (live leases), busy, idle or draining."""
    waiting_since_ms: int | None = None
    """Request time of the oldest main task in progress (ms since the epoch), if any."""
    planned: int = 0
    """Sub-tasks planned by the task controller and not finished (queued, running, not yet
    published, and the loss stage a generate-and-run will plan)."""

    def __post_init__(self) -> None:
        # Cheap check first: the scaler builds one of these per model per read.
        counts = (self.waiting, self.reserved, self.busy, self.main_tasks, self.priority)
        if min(*counts, self.live, self.planned) < 0:
            for field in dataclasses.fields(self):
                value = getattr(self, field.name)
                if value is not None and value < 0:
                    raise ValueError(f"ModelState.{field.name} must be >= 0, got {value}")

    @property
    def outstanding(self) -> int:
        """Sub-tasks not finished: waiting plus reserved or running."""
        return self.waiting + self.reserved

    def outstanding_planned(self) -> int:
        """Sub-tasks not finished, planned ones included (``count_planned``)."""
        return max(self.outstanding, self.planned)

    @property
    def in_progress(self) -> bool:
        return self.outstanding > 0 or self.main_tasks > 0 or self.busy > 0


def formula_workers(config: ScalingConfig, state: ModelState) -> int:
    """The strategy's formula alone (the Oasis arithmetic, without the busy floor)."""
    floor = config.worker_count_min
    if not (state.in_progress or (config.count_planned and state.planned > 0)):
        return floor
    strategy = config.scaling_strategy
    if strategy == ScalingStrategy.FIXED_WORKERS:
        return max(config.worker_count_fixed, floor)
    if strategy == ScalingStrategy.QUEUE_LOAD:
        wanted = state.main_tasks
    elif strategy == ScalingStrategy.DYNAMIC_TASKS:
        # chunks_per_worker >= 1 is guaranteed by ScalingConfig: no division by zero.
        count = state.outstanding_planned() if config.count_planned else state.outstanding
        wanted = math.ceil(count / config.chunks_per_worker)
    else:  # pragma: no cover - the enum is closed
        raise ValueError(f"unknown scaling strategy {strategy!r}")
    wanted = max(wanted, 1)  # work in progress never means zero workers
    return max(min(wanted, config.worker_count_max), floor)


def desired_workers(config: ScalingConfig, state: ModelState) -> int:
    """Workers this model should have: the formula, then never below the busy workers."""
    return max(formula_workers(config, state), state.busy)
