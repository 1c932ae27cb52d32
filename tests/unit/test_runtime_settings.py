"""The local autoscaler's inputs: its settings and the generator's ScaledObject.

Covers: ``AutoscalerSettings.from_env`` (defaults, overrides, a bad value named; every
variable is in tests/unit/test_settings_env.py), and that
the ScaledObject the k8s generator writes for each scaling strategy parses into the spec
the autoscaler obeys (local timings, min/max from the scaling configuration, behavior,
fallback, the trigger metadata KEDA sends to the scaler).
"""

from __future__ import annotations

import pytest

from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.registry import ModelRecord
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.model_autoscaler import model_scaled_object, scaler_ref
from oasis_keda.runtime.spec import parse_scaled_object


def record(**scaling: object) -> ModelRecord:
    return ModelRecord(
        model_id="m-1",
        pk=1,
        queue="oasis-keda.model.m-1",
        supplier_id="S",
        model_name="M",
        version_id="1",
        scaling=ScalingConfig.model_validate(scaling),
    )


def test_settings_from_env() -> None:
    assert AutoscalerSettings.from_env({}) == AutoscalerSettings()
    got = AutoscalerSettings.from_env(
        {"OASIS_KEDA_AUTOSCALER_POLLING_INTERVAL_S": "2", "OASIS_KEDA_AUTOSCALER_GRACE_S": "30.5"}
    )
    assert (got.polling_interval_s, got.grace_s) == (2, 30.5)
    with pytest.raises(ValueError, match="OASIS_KEDA_AUTOSCALER_COOLDOWN_PERIOD_S"):
        AutoscalerSettings.from_env({"OASIS_KEDA_AUTOSCALER_COOLDOWN_PERIOD_S": "soon"})
    with pytest.raises(ValueError, match="polling_interval_s"):
        AutoscalerSettings(polling_interval_s=0)


@pytest.mark.parametrize(
    ("scaling", "bounds"),
    [
        ({"scaling_strategy": "DYNAMIC_TASKS", "worker_count_max": 4}, (0, 4)),
        ({"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 6, "worker_count_min": 1}, (1, 6)),
        ({"scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 2}, (0, 2)),
    ],
)
def test_generator_scaled_object_parses(
    scaling: dict[str, object], bounds: tuple[int, int]
) -> None:
    settings = AutoscalerSettings(polling_interval_s=1, cooldown_period_s=7)
    manifest = model_scaled_object(record(**scaling), settings, "127.0.0.1:9")
    spec = parse_scaled_object(manifest)
    assert (spec.min_replica_count, spec.max_replica_count) == bounds
    assert (spec.polling_interval_s, spec.cooldown_period_s) == (1, 7)
    assert spec.behavior is not None
    assert spec.behavior.scale_down.stabilization_window_s == settings.scale_down_stabilization_s
    assert spec.fallback is not None and spec.fallback_enabled
    ref = scaler_ref(manifest)
    assert ref.scalerMetadata["model"] == "m-1"
    assert ref.name == manifest["metadata"]["name"]
