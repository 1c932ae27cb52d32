"""The global worker budget: one cluster-wide cap shared by every model.

Pure. When the desired workers summed over all models exceed the limit, the budget goes:

1. first to busy workers: a model keeps every worker that runs a task (this part is granted
   even when busy workers alone exceed the limit: taking it away would kill running work);
2. then to models in order of their highest analysis priority (10 first, unknown last);
3. within one priority, max-min fair (water-filling): every model gets an equal share,
   shares a model cannot use go to the others; the indivisible remainder goes one worker
   each in model-id order, so the result is deterministic.

Oasis hands its limit out first come, first served; this is what the issue asks instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True, kw_only=True)
class Demand:
    """What one model asks of the budget."""

    model_id: str
    desired: int
    busy: int = 0
    priority: int = 0

    def __post_init__(self) -> None:
        if self.desired < 0 or self.busy < 0:
            raise ValueError(f"Demand for {self.model_id!r}: counts must be >= 0")


def allocate(demands: Iterable[Demand], limit: int | None) -> dict[str, int]:
    """Workers granted per model id under ``limit`` (``None`` = no cap)."""
    items = sorted(demands, key=lambda d: d.model_id)
    if limit is None or sum(d.desired for d in items) <= limit:
        return {d.model_id: d.desired for d in items}
    if limit < 0:
        raise ValueError(f"global worker limit must be >= 0, got {limit}")

    granted = {d.model_id: min(d.busy, d.desired) for d in items}
    remaining = max(0, limit - sum(granted.values()))
    for priority in sorted({d.priority for d in items}, reverse=True):
        if remaining == 0:
            break
        needs = {
            d.model_id: d.desired - granted[d.model_id] for d in items if d.priority == priority
        }
        shares = fair_share(needs, remaining)
        for model_id, extra in shares.items():
            granted[model_id] += extra
            remaining -= extra
    return granted


def fair_share(needs: Mapping[str, int], budget: int) -> dict[str, int]:
    """Max-min fair split of ``budget`` units over ``needs``; remainder in key order."""
    alloc = dict.fromkeys(needs, 0)
    active = sorted(k for k, need in needs.items() if need > 0)
    while budget > 0 and active:
        share = budget // len(active)
        if share == 0:
            for key in active[:budget]:
                alloc[key] += 1
            break
        for key in active:
            give = min(share, needs[key] - alloc[key])
            alloc[key] += give
            budget -= give
        active = [k for k in active if alloc[k] < needs[k]]
    return alloc
