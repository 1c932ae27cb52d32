"""Scaling and chunking configuration schemas (fields, defaults and checks of the Oasis v2 API).

Covers: Oasis defaults; integers only (no bools, floats or strings); >= 1 for chunk fields
and chunks_per_worker, >= 0 for worker counts; min <= max; known enum values; unknown
fields refused; partial updates change only the given fields; every refusal names its field.
"""

from __future__ import annotations

from typing import Any

import pytest

from oasis_keda.core.config import (
    ChunkingConfig,
    ChunkingStrategy,
    ScalingConfig,
    ScalingStrategy,
    parse_config,
    update_config,
)
from oasis_keda.core.errors import ConfigError


def test_scaling_defaults() -> None:
    assert ScalingConfig().to_json_dict() == {
        "scaling_strategy": "FIXED_WORKERS",
        "worker_count_fixed": 1,
        "worker_count_max": 10,
        "worker_count_min": 0,
        "chunks_per_worker": 10,
        "count_planned": False,
    }


def test_chunking_defaults() -> None:
    assert ChunkingConfig().to_json_dict() == {
        "lookup_strategy": "FIXED_CHUNKS",
        "loss_strategy": "FIXED_CHUNKS",
        "fixed_lookup_chunks": 1,
        "fixed_analysis_chunks": 1,
        "dynamic_locations_per_lookup": 10000,
        "dynamic_events_per_analysis": 1,
        "dynamic_chunks_max": 200,
    }


SCALING_REFUSED = [
    ({"chunks_per_worker": 0}, "chunks_per_worker"),
    ({"worker_count_max": -1}, "worker_count_max"),
    ({"worker_count_min": -1}, "worker_count_min"),
    ({"worker_count_fixed": -2}, "worker_count_fixed"),
    ({"worker_count_min": 11}, "worker_count_min"),
    ({"worker_count_min": 3, "worker_count_max": 2}, "worker_count_min"),
    ({"worker_count_max": True}, "worker_count_max"),
    ({"worker_count_max": 2.0}, "worker_count_max"),
    ({"worker_count_max": "2"}, "worker_count_max"),
    ({"scaling_strategy": "BIGGEST"}, "scaling_strategy"),
    ({"worker_count": 2}, "worker_count"),
]

CHUNKING_REFUSED = [
    ({"fixed_lookup_chunks": 0}, "fixed_lookup_chunks"),
    ({"fixed_analysis_chunks": 0}, "fixed_analysis_chunks"),
    ({"dynamic_locations_per_lookup": 0}, "dynamic_locations_per_lookup"),
    ({"dynamic_events_per_analysis": -5}, "dynamic_events_per_analysis"),
    ({"dynamic_chunks_max": 0}, "dynamic_chunks_max"),
    ({"loss_strategy": "SOMETIMES"}, "loss_strategy"),
    ({"lookup_strategy": None}, "lookup_strategy"),
]


@pytest.mark.parametrize(("changes", "field"), SCALING_REFUSED)
def test_scaling_refusals_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        update_config(ScalingConfig(), changes)
    assert field in info.value.fields
    assert field in str(info.value)


@pytest.mark.parametrize(("changes", "field"), CHUNKING_REFUSED)
def test_chunking_refusals_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        update_config(ChunkingConfig(), changes)
    assert field in info.value.fields


def test_zero_is_a_value_not_missing() -> None:
    config = update_config(ScalingConfig(), {"worker_count_min": 0, "worker_count_max": 0})
    assert (config.worker_count_min, config.worker_count_max) == (0, 0)


def test_partial_update_changes_only_given_fields() -> None:
    current = ScalingConfig(scaling_strategy=ScalingStrategy.QUEUE_LOAD, worker_count_max=7)
    new = update_config(current, {"worker_count_min": 2})
    assert new.scaling_strategy == ScalingStrategy.QUEUE_LOAD
    assert (new.worker_count_max, new.worker_count_min) == (7, 2)
    assert current.worker_count_min == 0  # frozen: the original is untouched


def test_parse_whole_chunking() -> None:
    config = parse_config(ChunkingConfig, {"loss_strategy": "DYNAMIC_CHUNKS"})
    assert config.loss_strategy == ChunkingStrategy.DYNAMIC_CHUNKS


@pytest.mark.parametrize("bad", [[1, 2], "x", 3])
def test_non_object_refused(bad: Any) -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        update_config(ScalingConfig(), bad)
