"""The global worker budget: a ceiling on live workers, shared fairly. Pure.

Two steps, each a function of plain data (docs/SCALER.md shows why the ceiling holds):

1. :func:`fair_shares` splits the limit into each model's *share*: priority first (10
   highest), then max-min fair within a priority (water-filling: equal shares, what a model
   cannot use goes to the others). The indivisible remainder goes one worker each to the
   models whose work has waited longest, so shares depend on the work, never on model ids,
   and stay the same from one poll to the next while the work does.
2. :func:`grant` turns shares into *grants*, the counts the scaler answers. A model whose
   share is below what it holds is cut to its share at once (its extra workers drain after
   their current sub-task). A model whose share is above its grant grows only from capacity
   that is free now: the limit minus, over all models, what each *holds*, the largest of
   its live workers (counted from their own heartbeats), its grant, and a raise whose
   workers may still be starting. Draining workers therefore keep their capacity until
   their process ends, whatever the orchestrator's scale-down delay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True, kw_only=True)
class Demand:
    """What one model asks of the budget, and what it holds now."""

    model_id: str
    wanted: int
    """Workers its strategy asks for (with the busy floor)."""
    priority: int = 0
    """Highest analysis priority in progress, 1-10; 0 when none is known."""
    waiting_since_ms: int | None = None
    """When its oldest work in progress was requested (ms); ``None``: not known."""
    live: int = 0
    """Worker processes alive now (live leases), draining ones included."""
    granted: int = 0
    """Its current grant (what the scaler answered last)."""
    raised: int = 0
    """A raised grant whose workers may still be starting (0: none pending)."""

    def __post_init__(self) -> None:
        for name in ("wanted", "live", "granted", "raised"):
            if getattr(self, name) < 0:
                raise ValueError(f"Demand for {self.model_id!r}: {name} must be >= 0")

    @property
    def held(self) -> int:
        """Capacity the model takes now: live workers, its grant, or a pending raise."""
        return max(self.live, self.granted, self.raised)

    def _age_key(self) -> tuple[float, str]:
        since = math.inf if self.waiting_since_ms is None else self.waiting_since_ms
        return (since, self.model_id)  # the id only orders equal request times


def fair_shares(demands: Iterable[Demand], limit: int) -> dict[str, int]:
    """Each model's share of ``limit``: priority, then max-min fair, then oldest waiting."""
    if limit < 0:
        raise ValueError(f"global worker limit must be >= 0, got {limit}")
    items = list(demands)
    shares = {d.model_id: 0 for d in items}
    remaining = limit
    for priority in sorted({d.priority for d in items}, reverse=True):
        level = sorted((d for d in items if d.priority == priority), key=Demand._age_key)
        given = _water_fill([(d.model_id, d.wanted) for d in level], remaining)
        shares.update(given)
        remaining -= sum(given.values())
        if remaining <= 0:
            break
    return shares


def _water_fill(needs: Sequence[tuple[str, int]], budget: int) -> dict[str, int]:
    """Max-min fair split; ``needs`` in tie-break order (the remainder goes first to the
    first)."""
    alloc = {key: 0 for key, _ in needs}
    want = dict(needs)
    active = [key for key, need in needs if need > 0]
    while budget > 0 and active:
        share = budget // len(active)
        if share == 0:
            for key in active[:budget]:
                alloc[key] += 1
            break
        for key in active:
            give = min(share, want[key] - alloc[key])
            alloc[key] += give
            budget -= give
        active = [k for k in active if alloc[k] < want[k]]
    return alloc


@dataclasses.dataclass(frozen=True)
class Grants:
    """The budget's answer: the new grant per model, and the raises it made."""

    granted: dict[str, int]
    raised: dict[str, int]
    """Models whose grant grew, with the capacity they now hold (pending until live)."""
    shares: dict[str, int]


def grant(demands: Iterable[Demand], limit: int) -> Grants:
    """New grants under the ceiling ``sum(held) <= limit`` (see the module docstring).

    A model's grant moves towards its share: down at once, up by at most the capacity
    free now, handed out in share order (priority, then oldest waiting), so no model can
    take capacity that another's draining workers still hold.
    """
    items = sorted(demands, key=lambda d: (-d.priority, *d._age_key()))
    shares = fair_shares(items, limit)
    granted: dict[str, int] = {}
    held: dict[str, int] = {}
    for d in items:  # cuts first: they free what their workers no longer hold
        granted[d.model_id] = min(d.granted, shares[d.model_id])
        held[d.model_id] = max(d.live, granted[d.model_id], d.raised)
    free = limit - sum(held.values())
    raised: dict[str, int] = {}
    for d in items:
        gap = shares[d.model_id] - granted[d.model_id]
        if gap <= 0 or free <= 0:
            continue
        step = min(gap, free)
        granted[d.model_id] += step
        free -= step
        # The raise's workers join whatever the model holds now (draining ones included).
        raised[d.model_id] = held[d.model_id] + step
        held[d.model_id] += step
    return Grants(granted=granted, raised=raised, shares=shares)


def pending_raise(raw: str | None, *, live: int, now_ms: int) -> int:
    """The capacity a stored raise ``"<count>:<until ms>"`` still holds (0 when none).

    A raise stops holding once the model's live workers reach it (they count themselves
    from then on) or when its start allowance ends.
    """
    if not raw:
        return 0
    head, _, tail = raw.partition(":")
    try:
        count, until = int(head), int(tail)
    except ValueError:
        return 0
    return count if live < count and now_ms < until else 0
