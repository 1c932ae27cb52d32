"""Every numeric configuration field has a maximum, and nothing past it gets through.

Covers: each field's maximum accepted and one above it refused with a message naming the
maximum; values written out as huge integers (10**14 workers, 10**30 chunks) refused;
chunks_per_worker between 1 and MAX_CHUNKS; a partial update past a maximum leaves the
configuration as it was; the planner refuses a stage planned above MAX_CHUNKS; the
manifest's replica counts never pass MAX_WORKERS (a Kubernetes int32), nor its timings
an int32, nor a worker's concurrency MAX_CONCURRENCY.
"""

from __future__ import annotations

import pytest

from oasis_keda.core.config import (
    MAX_CHUNKS,
    MAX_PER_CHUNK,
    MAX_WORKERS,
    MAXIMUM,
    ChunkingConfig,
    ScalingConfig,
    parse_config,
    update_config,
)
from oasis_keda.core.errors import ConfigError
from oasis_keda.kubectl.manifest_settings import MAX_CONCURRENCY, WorkerManifestSettings
from oasis_keda.kubectl.manifests import replica_bounds
from task_controller.chunking import PlanError, plan_losses

SCALING_FIELDS = ("worker_count_fixed", "worker_count_max", "worker_count_min", "chunks_per_worker")


def _config_class(field: str) -> type[ScalingConfig | ChunkingConfig]:
    return ScalingConfig if field in SCALING_FIELDS else ChunkingConfig


def test_every_numeric_field_has_a_maximum() -> None:
    numeric = {
        name
        for cls in (ScalingConfig, ChunkingConfig)
        for name, info in cls.model_fields.items()
        if info.annotation is int
    }
    assert numeric == set(MAXIMUM)
    assert MAX_WORKERS < 2**31 - 1 and MAX_CHUNKS < 2**31 - 1 and MAX_PER_CHUNK == 2**31 - 1


@pytest.mark.parametrize("field", sorted(MAXIMUM))
def test_the_maximum_is_accepted_and_one_more_refused(field: str) -> None:
    cls = _config_class(field)
    high, why = MAXIMUM[field]
    extra = {"worker_count_max": MAX_WORKERS} if field == "worker_count_min" else {}
    assert getattr(parse_config(cls, {field: high, **extra}), field) == high
    with pytest.raises(ConfigError) as caught:
        parse_config(cls, {field: high + 1, **extra})
    assert caught.value.fields == {field: f"must be at most {high} ({why}), got {high + 1}"}


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (ScalingConfig, "worker_count_fixed", 100_000_000_000_000),
        (ScalingConfig, "worker_count_max", 3_000_000_000),
        (ChunkingConfig, "fixed_analysis_chunks", 10**30),
        (ChunkingConfig, "dynamic_events_per_analysis", 10**30),
    ],
)
def test_huge_integers_are_refused(
    cls: type[ScalingConfig | ChunkingConfig], field: str, value: int
) -> None:
    with pytest.raises(ConfigError, match=rf"{field}: must be at most \d+ .*got {value}"):
        parse_config(cls, {field: value})


def test_chunks_per_worker_has_a_minimum_and_a_maximum() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(ScalingConfig, {"chunks_per_worker": 0})
    assert "chunks_per_worker" in caught.value.fields
    assert parse_config(ScalingConfig, {"chunks_per_worker": 1}).chunks_per_worker == 1
    with pytest.raises(ConfigError, match="chunks_per_worker: must be at most 10000"):
        parse_config(ScalingConfig, {"chunks_per_worker": MAX_CHUNKS + 1})


def test_a_refused_update_changes_nothing() -> None:
    current = ScalingConfig(worker_count_max=5)
    with pytest.raises(ConfigError):
        update_config(current, {"worker_count_max": 6, "worker_count_fixed": MAX_WORKERS + 1})
    assert current.worker_count_max == 5 and current.worker_count_fixed == 1


def test_a_stage_planned_above_the_maximum_is_refused() -> None:
    # A configuration that skipped validation (built without it) cannot plan past the cap.
    config = ChunkingConfig.model_construct(
        **{**ChunkingConfig().model_dump(), "fixed_analysis_chunks": MAX_CHUNKS + 5}
    )
    with pytest.raises(PlanError, match=rf"{MAX_CHUNKS + 5} chunks planned: a stage may have"):
        plan_losses(config, None)
    assert plan_losses(config, 7).chunks == 7  # capped by the events first
    assert plan_losses(ChunkingConfig(fixed_analysis_chunks=MAX_CHUNKS), None).chunks == MAX_CHUNKS


def test_manifest_replica_counts_stay_within_int32() -> None:
    assert replica_bounds(ScalingConfig(worker_count_fixed=MAX_WORKERS)) == (0, MAX_WORKERS)
    unchecked = ScalingConfig.model_construct(
        **{**ScalingConfig().model_dump(), "worker_count_fixed": 3_000_000_000}
    )
    with pytest.raises(ValueError, match="maxReplicaCount 3000000000 is above the maximum"):
        replica_bounds(unchecked)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("polling_interval_s", 2**31),
        ("cooldown_period_s", 2**31),
        ("fallback_failure_threshold", 2**31),
        ("termination_grace_period_s", 2**31),
        ("concurrency", MAX_CONCURRENCY + 1),
    ],
)
def test_manifest_settings_stay_within_their_maxima(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        WorkerManifestSettings(**{field: value})
    WorkerManifestSettings(**{field: value - 1})  # the maximum itself is accepted
