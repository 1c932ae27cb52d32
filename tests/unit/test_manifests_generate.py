"""The per-model manifest generator (oasis_keda.kubectl.manifests and its settings and
names modules), pure.

Covers: the ScaledObject shape (KEDA 0 <-> 1 by push activation, the HPA 1 <-> N on
metric = desired workers, target 1: external-push, scalerAddress, model metadata, AverageValue, min/max from the scaling configuration, pollingInterval,
cooldownPeriod, fallback, HPA behaviour with tolerance 0 and stabilisation windows) for a
table of configurations, each validated against the KEDA CRD schema; the worker Deployment
(0 replicas, configurable grace period, restricted security, downward-API pod identity)
validated against the Kubernetes schemas; names for awkward model ids; refused settings;
the YAML rendering and its tolerance comment.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from _keda_schema import keda_validator

from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.registry import ModelRecord
from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings
from oasis_keda.kubectl.manifests import (
    model_manifests,
    replica_bounds,
    scaled_object,
    to_yaml,
    worker_deployment,
)
from oasis_keda.kubectl.names import resource_name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def record(model_id: str = "piwind", **scaling: Any) -> ModelRecord:
    return ModelRecord(
        model_id=model_id,
        pk=7,
        queue=f"oasis-keda.model.{model_id}",
        supplier_id="OasisLMF",
        model_name="PiWind",
        version_id="1",
        scaling=ScalingConfig.model_validate(scaling),
    )


SCALING_TABLE = [
    # (scaling configuration, expected (minReplicaCount, maxReplicaCount))
    ({}, (0, 1)),
    ({"scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 3}, (0, 3)),
    ({"scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 1, "worker_count_min": 2}, (2, 2)),
    ({"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 5}, (0, 5)),
    ({"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 5, "worker_count_min": 1}, (1, 5)),
    ({"scaling_strategy": "DYNAMIC_TASKS", "worker_count_max": 9, "chunks_per_worker": 5}, (0, 9)),
    # A model capped at 0: Kubernetes needs max >= 1, the scaler keeps the metric at 0.
    ({"scaling_strategy": "DYNAMIC_TASKS", "worker_count_max": 0}, (0, 1)),
    ({"scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 0}, (0, 1)),
]


@pytest.mark.parametrize(("scaling", "bounds"), SCALING_TABLE)
def test_replica_bounds_follow_the_scaling_configuration(
    scaling: dict[str, Any], bounds: tuple[int, int]
) -> None:
    assert replica_bounds(ScalingConfig.model_validate(scaling)) == bounds
    so = scaled_object(record(**scaling), WorkerManifestSettings())
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == bounds


@pytest.mark.parametrize(("scaling", "bounds"), SCALING_TABLE)
def test_generated_scaled_objects_validate_against_the_keda_crd(
    scaling: dict[str, Any], bounds: tuple[int, int]
) -> None:
    validator = keda_validator("ScaledObject")
    for settings in (
        WorkerManifestSettings(),
        WorkerManifestSettings(namespace="risk", trigger_authentication="oasis-scaler-mtls"),
    ):
        so = scaled_object(record(**scaling), settings)
        errors = list(validator.iter_errors(so))
        assert not errors, errors[0].message


def test_scaled_object_follows_the_design() -> None:
    settings = WorkerManifestSettings(
        polling_interval_s=10,
        cooldown_period_s=200,
        scale_down_stabilization_s=45,
        scale_up_stabilization_s=5,
        fallback_failure_threshold=4,
    )
    rec = record(scaling_strategy="QUEUE_LOAD", worker_count_max=6, worker_count_min=1)
    spec = scaled_object(rec, settings)["spec"]
    assert spec["scaleTargetRef"]["name"] == resource_name("piwind") == "oasis-worker-piwind"
    [trigger] = spec["triggers"]
    assert trigger["type"] == "external-push"
    assert trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "scalerAddress": "oasis-scaler.oasis.svc.cluster.local:6000",
        "model": "piwind",
    }
    assert "authenticationRef" not in trigger
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (10, 200)
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 6)
    assert spec["fallback"] == {
        "failureThreshold": 4,
        "replicas": 1,
        "behavior": "currentReplicasIfHigher",
    }
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["tolerance"] == 0
    assert behavior["scaleDown"]["tolerance"] == 0
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 5
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 45
    # Scale-up may jump straight to the maximum in one step.
    assert {"type": "Pods", "value": 6, "periodSeconds": 15} in behavior["scaleUp"]["policies"]


def test_scaler_address_and_trigger_authentication_are_options() -> None:
    settings = WorkerManifestSettings(namespace="risk", trigger_authentication="oasis-scaler-mtls")
    trigger = scaled_object(record(), settings)["spec"]["triggers"][0]
    assert trigger["metadata"]["scalerAddress"] == "oasis-scaler.risk.svc.cluster.local:6000"
    assert trigger["authenticationRef"] == {"name": "oasis-scaler-mtls"}
    other = WorkerManifestSettings(scaler_address="scaler.example:7000")
    assert scaled_object(record(), other)["spec"]["triggers"][0]["metadata"]["scalerAddress"] == (
        "scaler.example:7000"
    )


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_worker_deployment_validates_and_is_safe(version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    settings = WorkerManifestSettings(
        termination_grace_period_s=1234, concurrency=3, image="registry.example/oasis:1.2"
    )
    dep = worker_deployment(record("PiWind_v2"), settings)
    kv.validate(dep, version, strict=True)
    spec = dep["spec"]
    assert spec["replicas"] == 0
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 1234
    assert pod["serviceAccountName"] == "oasis-worker"
    [container] = pod["containers"]
    assert container["image"] == "registry.example/oasis:1.2"
    assert container["args"] == ["worker", "serve", "--model", "PiWind_v2", "--concurrency", "3"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OASIS_KEDA_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["OASIS_KEDA_MODEL_ID"]["value"] == "PiWind_v2"
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"]
    # Selector labels are a subset of the pod labels (or the Deployment is refused).
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    "model_id",
    ["piwind", "PiWind", "OasisLMF_PiWind_1", "a" * 80, "x.y/z", "-edge-", "ünïcode", "1"],
)
def test_names_are_dns_labels_and_distinct(model_id: str) -> None:
    name = resource_name(model_id)
    assert DNS_LABEL.match(name) and len(name) <= 63, name
    assert name.startswith("oasis-worker-")
    # Ids that differ only in what the cleaning removes still get different names.
    assert resource_name(model_id) != resource_name(model_id + "_")


def test_plain_ids_keep_their_name() -> None:
    assert resource_name("piwind-1") == "oasis-worker-piwind-1"
    assert resource_name("PiWind") != resource_name("piwind")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("polling_interval_s", 0),
        ("cooldown_period_s", -1),
        ("termination_grace_period_s", 0),
        ("concurrency", 0),
        ("fallback_failure_threshold", 0),
        ("scale_down_stabilization_s", 3601),
        ("namespace", "Bad_NS"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(
        ValueError, match=field.split("_s")[0] if field != "namespace" else "namespace"
    ):
        WorkerManifestSettings(**{field: value})


def test_yaml_round_trips_and_carries_the_tolerance_comment() -> None:
    objects = model_manifests(record(scaling_strategy="DYNAMIC_TASKS"), WorkerManifestSettings())
    text = to_yaml(objects)
    assert list(yaml.safe_load_all(text)) == objects
    assert "HPAConfigurableTolerance" in text and "0.9 <= desired/current <= 1.1" in text
    lines = text.splitlines()
    first_tolerance = next(i for i, line in enumerate(lines) if "tolerance: 0" in line)
    assert lines[first_tolerance - 1].lstrip().startswith("#")
    assert text.count("---\n") == 1
