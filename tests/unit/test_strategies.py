"""Desired workers per strategy (docs/SCALER.md), with the Oasis seed examples.

Covers: idle -> worker_count_min; FIXED_WORKERS while busy and idle; QUEUE_LOAD m analyses
-> m, capped; DYNAMIC_TASKS ceil(outstanding / chunks_per_worker), capped; the min floor;
work in progress never means 0 workers; the busy floor above every cap; ModelState checks.
"""

from __future__ import annotations

import pytest

from oasis_keda.core.config import ScalingConfig, ScalingStrategy
from scaler.strategies import ModelState, desired_workers, formula_workers

FIXED = ScalingStrategy.FIXED_WORKERS
QUEUE = ScalingStrategy.QUEUE_LOAD
DYN = ScalingStrategy.DYNAMIC_TASKS


def cfg(strategy: ScalingStrategy, **fields: int | bool) -> ScalingConfig:
    return ScalingConfig(scaling_strategy=strategy, **fields)


CASES = [
    # id, config, state, expected desired
    ("idle default -> 0", cfg(FIXED), ModelState(), 0),
    ("idle keeps min", cfg(DYN, worker_count_min=2), ModelState(), 2),
    ("fixed while waiting", cfg(FIXED, worker_count_fixed=3), ModelState(waiting=1), 3),
    ("fixed while only main task", cfg(FIXED, worker_count_fixed=3), ModelState(main_tasks=1), 3),
    ("fixed idle -> 0", cfg(FIXED, worker_count_fixed=3), ModelState(), 0),
    ("fixed below min", cfg(FIXED, worker_count_fixed=1, worker_count_min=2),
     ModelState(waiting=1), 2),
    # seed: 3 analyses x 15 chunks at 5 a worker -> 9
    ("seed 3x15 / 5 -> 9", cfg(DYN, chunks_per_worker=5), ModelState(waiting=45, main_tasks=3), 9),
    ("seed capped to 4", cfg(DYN, chunks_per_worker=5, worker_count_max=4),
     ModelState(waiting=45, main_tasks=3), 4),
    ("dynamic counts reserved", cfg(DYN, chunks_per_worker=5),
     ModelState(waiting=40, reserved=5), 9),
    ("dynamic ceil", cfg(DYN, chunks_per_worker=10), ModelState(waiting=11), 2),
    ("dynamic main only -> 1", cfg(DYN), ModelState(main_tasks=2), 1),
    # count_planned: the planned sub-tasks not finished, not only the queue
    ("planned ignored by default", cfg(DYN, chunks_per_worker=3),
     ModelState(waiting=1, main_tasks=3, planned=36), 1),
    ("planned counted when asked", cfg(DYN, chunks_per_worker=3, count_planned=True),
     ModelState(waiting=1, main_tasks=3, planned=36), 10),
    ("planned capped", cfg(DYN, chunks_per_worker=3, count_planned=True, worker_count_max=4),
     ModelState(waiting=3, main_tasks=3, planned=36), 4),
    ("queue above planned wins", cfg(DYN, chunks_per_worker=1, count_planned=True),
     ModelState(waiting=7, planned=2), 7),
    ("between stages: planned holds", cfg(DYN, chunks_per_worker=3, count_planned=True),
     ModelState(main_tasks=1, planned=12), 4),
    ("planned alone is work", cfg(DYN, count_planned=True), ModelState(planned=1), 1),
    ("planned alone without the field: idle", cfg(DYN), ModelState(planned=1), 0),
    ("queue load ignores planned", cfg(QUEUE, count_planned=True),
     ModelState(main_tasks=2, planned=40), 2),
    ("dynamic min floor", cfg(DYN, worker_count_min=3, chunks_per_worker=10),
     ModelState(waiting=5), 3),
    # seed: m queued analyses under QUEUE_LOAD -> m, capped
    ("queue load m=1", cfg(QUEUE), ModelState(main_tasks=1, waiting=10), 1),
    ("queue load m=7", cfg(QUEUE), ModelState(main_tasks=7), 7),
    ("queue load capped", cfg(QUEUE, worker_count_max=5), ModelState(main_tasks=7), 5),
    ("queue load foreign tasks -> 1", cfg(QUEUE), ModelState(waiting=3), 1),
    ("queue load min", cfg(QUEUE, worker_count_min=4), ModelState(main_tasks=2), 4),
    ("max 0 means none", cfg(QUEUE, worker_count_max=0), ModelState(main_tasks=2), 0),
    # busy floor: never below busy workers, even above the cap
    ("busy floor over formula", cfg(DYN, chunks_per_worker=10), ModelState(reserved=3, busy=3), 3),
    ("busy floor over cap", cfg(DYN, worker_count_max=2), ModelState(reserved=5, busy=5), 5),
    ("busy floor over fixed", cfg(FIXED, worker_count_fixed=1), ModelState(busy=4, reserved=4), 4),
    ("busy alone is in progress", cfg(FIXED, worker_count_fixed=2), ModelState(busy=1), 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "state", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_desired_workers(config: ScalingConfig, state: ModelState, expected: int) -> None:
    assert desired_workers(config, state) == expected


def test_formula_ignores_busy_floor() -> None:
    config = cfg(DYN, worker_count_max=2, chunks_per_worker=1)
    state = ModelState(reserved=5, busy=5)
    assert formula_workers(config, state) == 2
    assert desired_workers(config, state) == 5


def test_only_chosen_strategy_fields_matter() -> None:
    state = ModelState(waiting=30, main_tasks=2)
    base = cfg(QUEUE)
    other = cfg(QUEUE, worker_count_fixed=9, chunks_per_worker=1)
    assert desired_workers(base, state) == desired_workers(other, state) == 2


def test_outstanding_and_in_progress() -> None:
    state = ModelState(waiting=2, reserved=3)
    assert state.outstanding == 5
    assert state.in_progress
    assert not ModelState().in_progress


def test_negative_state_refused() -> None:
    with pytest.raises(ValueError, match="waiting"):
        ModelState(waiting=-1)
