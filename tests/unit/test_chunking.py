"""Chunk planner: the Oasis v2 chunk counts and the clamps Oasis forgets.

Covers: FIXED lookup clamp to rows; DYNAMIC lookup ceil and dynamic_chunks_max cap; FIXED
loss clamp to events (and no clamp when unknown); DYNAMIC loss from number_of_events with the
cap; the refusal of DYNAMIC loss without number_of_events; zero is never "missing"; bad
values are refused naming the field; the single-chunk case.
"""

from __future__ import annotations

import pytest

from oasis_keda.core.config import ChunkingConfig
from task_controller.chunking import PlanError, plan_lookup, plan_losses


def cfg(**fields: object) -> ChunkingConfig:
    return ChunkingConfig.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "rows", "expected"),
    [
        ({"fixed_lookup_chunks": 5}, 4, 4),  # a 4-row file asked for 5 gives 4
        ({"fixed_lookup_chunks": 3}, 10, 3),
        ({}, 12_599, 1),
        (
            {
                "lookup_strategy": "DYNAMIC_CHUNKS",
                "dynamic_locations_per_lookup": 2_000,
                "dynamic_chunks_max": 50,
            },
            85_803,
            43,
        ),
        (
            {
                "lookup_strategy": "DYNAMIC_CHUNKS",
                "dynamic_locations_per_lookup": 1_000,
                "dynamic_chunks_max": 50,
            },
            85_803,
            50,
        ),
        ({"lookup_strategy": "DYNAMIC_CHUNKS"}, 1, 1),
        ({"lookup_strategy": "DYNAMIC_CHUNKS", "dynamic_locations_per_lookup": 10}, 10, 1),
        ({"lookup_strategy": "DYNAMIC_CHUNKS", "dynamic_locations_per_lookup": 10}, 11, 2),
    ],
)
def test_lookup_chunk_counts(fields: dict[str, object], rows: int, expected: int) -> None:
    plan = plan_lookup(cfg(**fields), rows)
    assert plan.chunks == expected
    assert plan.stage == "inputs"
    assert plan.basis == rows


@pytest.mark.parametrize(
    ("fields", "events", "expected"),
    [
        ({"fixed_analysis_chunks": 4}, 1_447, 4),
        ({"fixed_analysis_chunks": 10}, 3, 3),  # clamp to the event count
        ({"fixed_analysis_chunks": 10}, None, 10),  # unknown count: no clamp under FIXED
        ({"loss_strategy": "DYNAMIC_CHUNKS", "dynamic_events_per_analysis": 100}, 1_447, 15),
        ({"loss_strategy": "DYNAMIC_CHUNKS", "dynamic_events_per_analysis": 1_000}, 38_127, 39),
        ({"loss_strategy": "DYNAMIC_CHUNKS"}, 38_127, 200),  # 1 per chunk, capped at 200
        (
            {"loss_strategy": "DYNAMIC_CHUNKS", "dynamic_chunks_max": 7},
            1_447,
            7,
        ),
        ({"loss_strategy": "DYNAMIC_CHUNKS", "dynamic_events_per_analysis": 5_000}, 1_447, 1),
    ],
)
def test_loss_chunk_counts(fields: dict[str, object], events: int | None, expected: int) -> None:
    plan = plan_losses(cfg(**fields), events)
    assert plan.chunks == expected
    assert plan.stage == "losses"


def test_single_chunk_is_flagged() -> None:
    assert plan_losses(cfg(), 1_447).single
    assert not plan_losses(cfg(fixed_analysis_chunks=2), 1_447).single


def test_dynamic_loss_without_number_of_events_is_refused() -> None:
    with pytest.raises(PlanError) as info:
        plan_losses(cfg(loss_strategy="DYNAMIC_CHUNKS"), None)
    assert info.value.field == "loss_strategy"
    assert "number_of_events" in str(info.value)


@pytest.mark.parametrize("events", [0, -3])
def test_zero_events_is_a_value_not_missing(events: int) -> None:
    # 0 must not fall back to "unknown" (the Oasis bug): it is refused by name.
    for strategy in ("FIXED_CHUNKS", "DYNAMIC_CHUNKS"):
        with pytest.raises(PlanError) as info:
            plan_losses(cfg(loss_strategy=strategy), events)
        assert info.value.field == "number_of_events"


@pytest.mark.parametrize("strategy", ["FIXED_CHUNKS", "DYNAMIC_CHUNKS"])
def test_empty_location_file_is_refused(strategy: str) -> None:
    with pytest.raises(PlanError) as info:
        plan_lookup(cfg(lookup_strategy=strategy), 0)
    assert info.value.field == "location_file"
    assert "no data rows" in str(info.value)


class _Raw:
    """A configuration that skipped validation (e.g. an old stored record)."""

    lookup_strategy = "DYNAMIC_CHUNKS"
    loss_strategy = "DYNAMIC_CHUNKS"
    fixed_lookup_chunks = 0
    fixed_analysis_chunks = 0
    dynamic_locations_per_lookup = 0
    dynamic_events_per_analysis = 0
    dynamic_chunks_max = 200


def test_zero_divisors_are_refused_not_divided_by() -> None:
    with pytest.raises(PlanError, match="dynamic_locations_per_lookup"):
        plan_lookup(_Raw(), 100)
    with pytest.raises(PlanError, match="dynamic_events_per_analysis"):
        plan_losses(_Raw(), 100)


def test_unknown_strategy_is_refused() -> None:
    raw = _Raw()
    raw.loss_strategy = "SOMETIMES"  # type: ignore[misc]
    with pytest.raises(PlanError, match="loss_strategy"):
        plan_losses(raw, 10)
