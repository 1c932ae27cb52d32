"""How a stage's estimates of its time left compared with its actual end.

The worker that completes a sub-task estimates the stage's time left
(:mod:`oasis_keda.core.eta`), at most once a second per stage (:func:`estimate_due`), and
keeps it with :func:`record_estimate`; the worker that ends
the stage calls :func:`settle`, which compares every estimate with the time that was really
left, logs the median error, and keeps the outcome in a capped list (``keys.ETA_OUTCOMES``)
that ``make bench`` reads. A stage that fails or is cancelled settles nothing; its
estimates expire.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from typing import Any, Final

import redis

from oasis_keda.core import keys

logger = logging.getLogger(__name__)

#: How long a stage's estimates are kept if the stage never settles (a crash, a cancel).
ESTIMATES_TTL_S: Final = 24 * 3600
#: How many settled stages the outcome list keeps.
OUTCOMES_KEPT: Final = 1000


#: A stage's estimates are recorded at most this often: each costs a few milliseconds of
#: queries, more than a short sub-task's own bookkeeping.
ESTIMATE_EVERY_S: Final = 1.0


def estimate_due(client: redis.Redis, analysis_id: int, run_number: int, stage: str) -> bool:
    """Whether to estimate the stage's time left now: the first worker to ask in each
    ``ESTIMATE_EVERY_S`` window is told yes."""
    claimed = client.set(
        keys.eta_due(analysis_id, run_number, stage),
        b"1",
        nx=True,
        px=int(ESTIMATE_EVERY_S * 1000),
    )
    return bool(claimed)


def record_estimate(
    client: redis.Redis, analysis_id: int, run_number: int, stage: str, remaining_s: float
) -> None:
    """Keep an estimate made now of the stage's time left, to settle when it ends."""
    key = keys.eta_estimates(analysis_id, run_number, stage)
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(key, f"{time.time():.3f}:{remaining_s:.3f}")
        pipe.expire(key, ESTIMATES_TTL_S)
        pipe.execute()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a stage's estimates compared with its actual end."""

    analysis_id: int
    stage: str
    estimates: int
    median_abs_error_s: float
    median_rel_error: float
    errors_s: tuple[float, ...]
    #: (estimated, actual) seconds left, one pair per estimate in the order made.
    pairs: tuple[tuple[float, float], ...] = ()


def settle(
    client: redis.Redis, analysis_id: int, run_number: int, stage: str, *, ok: bool = True
) -> Outcome | None:
    """The stage ended now: compare its estimates with the time it actually had left (only
    for a stage that completed: ``ok``), keep the outcome, drop the estimates."""
    key = keys.eta_estimates(analysis_id, run_number, stage)
    with client.pipeline() as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw, _ = pipe.execute()
    if not ok or not raw:
        return None
    end = time.time()
    pairs: list[tuple[float, float]] = []
    for item in raw:
        made, _, left = (item.decode() if isinstance(item, bytes) else item).partition(":")
        pairs.append((round(float(left), 3), round(end - float(made), 3)))
    errors = [abs(est - actual) for est, actual in pairs]
    relative = [abs(est - actual) / actual if actual > 0 else 0.0 for est, actual in pairs]
    outcome = Outcome(
        analysis_id,
        stage,
        len(errors),
        statistics.median(errors),
        statistics.median(relative),
        tuple(round(e, 3) for e in errors),
        tuple(pairs),
    )
    with client.pipeline(transaction=False) as pipe:
        pipe.lpush(keys.ETA_OUTCOMES, json.dumps(dataclasses.asdict(outcome)))
        pipe.ltrim(keys.ETA_OUTCOMES, 0, OUTCOMES_KEPT - 1)
        pipe.execute()
    logger.info(
        "analysis %s %s ended: %d estimates of the time left, median error %.1f s (%.0f%%)",
        analysis_id,
        stage,
        outcome.estimates,
        outcome.median_abs_error_s,
        100 * outcome.median_rel_error,
    )
    return outcome


def outcomes(client: redis.Redis) -> list[dict[str, Any]]:
    """The settled stages' outcomes, newest first."""
    return [json.loads(x) for x in client.lrange(keys.ETA_OUTCOMES, 0, -1)]
