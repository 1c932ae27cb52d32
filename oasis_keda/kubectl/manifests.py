"""Manifests for one model: its worker Deployment and its KEDA ScaledObject.

Pure: a :class:`~oasis_keda.core.registry.ModelRecord` and
:class:`~oasis_keda.kubectl.manifest_settings.WorkerManifestSettings` in, plain dicts out
(ready for ``yaml.safe_dump``), so that the committed base manifests, the
``oasis-keda manifests model`` command, the local runtime and the tests all come from one
place. How the objects scale a model: KEDA does 0 <-> 1 workers through ``external-push``
activation (the scaler pushes "active" as soon as work arrives); the HPA does 1 <-> N
from ``metricType: AverageValue`` with target 1, the metric being the desired number of
workers (see ``docs/SCALER.md``); the HPA behaviour removes its 10% tolerance band where
the cluster allows it. :func:`to_yaml` prints the objects with the comments a reader of
the YAML needs, and ``python -m oasis_keda.kubectl.manifests`` regenerates the built-in
model's committed manifests.
"""

from __future__ import annotations

from typing import Any

import yaml

from oasis_keda.core.config import MAX_WORKERS, ScalingConfig, ScalingStrategy
from oasis_keda.core.registry import ModelRecord
from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings
from oasis_keda.kubectl.names import (
    MODEL_ANNOTATION,
    PART_OF,
    WORKER_COMPONENT,
    resource_name,
)

Json = dict[str, Any]


def replica_bounds(scaling: ScalingConfig) -> tuple[int, int]:
    """``(minReplicaCount, maxReplicaCount)`` from a scaling configuration.

    The maximum is the most the strategy can ask for: ``worker_count_fixed`` (or the floor)
    under FIXED_WORKERS, ``worker_count_max`` otherwise. Kubernetes needs a maximum >= 1, so
    a model capped at 0 gets 1 here and the scaler keeps its metric at 0. A configuration
    is never above :data:`MAX_WORKERS` (its validation refuses it), so neither is a count
    printed here: checked again, as Kubernetes needs an int32.
    """
    low = scaling.worker_count_min
    if scaling.scaling_strategy is ScalingStrategy.FIXED_WORKERS:
        high = max(scaling.worker_count_fixed, low)
    else:
        high = max(scaling.worker_count_max, low)
    if high > MAX_WORKERS:
        raise ValueError(f"maxReplicaCount {high} is above the maximum of {MAX_WORKERS} workers")
    return low, max(high, 1)


def _labels(record: ModelRecord) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "oasis-worker",
        "app.kubernetes.io/instance": resource_name(record.model_id),
        "app.kubernetes.io/component": WORKER_COMPONENT,
        "app.kubernetes.io/part-of": PART_OF,
    }


def _metadata(record: ModelRecord, settings: WorkerManifestSettings) -> Json:
    return {
        "name": resource_name(record.model_id),
        "namespace": settings.namespace,
        "labels": _labels(record),
        "annotations": {MODEL_ANNOTATION: record.model_id},
    }


def restricted_security_context() -> Json:
    """Container security context meeting the ``restricted`` Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


#: The worker's readiness file (on the pod's /tmp emptyDir).
WORKER_READY_FILE = "/tmp/oasis-keda/ready"


def _env(record: ModelRecord, settings: WorkerManifestSettings) -> list[Json]:
    return [
        {
            "name": "REDIS_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": settings.redis_secret, "key": "password"}},
        },
        # $(REDIS_PASSWORD) is expanded by the kubelet; the password must be URL-safe.
        {"name": "OASIS_KEDA_REDIS_URL", "value": "redis://:$(REDIS_PASSWORD)@oasis-redis:6379/0"},
        {"name": "OASIS_KEDA_STORAGE_DIR", "value": "/data"},
        {"name": "OASIS_KEDA_LOG_FORMAT", "value": "json"},
        {"name": "OASIS_KEDA_MODEL_ID", "value": record.model_id},
        # The downward API tells the worker which pod's deletion cost to keep current.
        {"name": "OASIS_KEDA_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "OASIS_KEDA_POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "NUMBA_CACHE_DIR", "value": "/var/cache/numba"},
        # written once Celery consumes and the imports are done (the readiness probe's file)
        {"name": "OASIS_KEDA_WORKER_READY_FILE", "value": WORKER_READY_FILE},
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
    ]


def worker_deployment(record: ModelRecord, settings: WorkerManifestSettings) -> Json:
    """The model's worker Deployment, at 0 replicas (KEDA owns the count from then on)."""
    labels = _labels(record)
    selector = {
        "app.kubernetes.io/name": labels["app.kubernetes.io/name"],
        "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
    }
    container = {
        "name": "worker",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": [
            "worker",
            "serve",
            "--model",
            record.model_id,
            "--concurrency",
            str(settings.concurrency),
        ],
        "env": _env(record, settings),
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        },
        # Ready once a task can start without waiting for imports (worker/warmup.py); not
        # ready again from the warm shutdown on.
        "readinessProbe": {
            "exec": {"command": ["test", "-f", WORKER_READY_FILE]},
            "periodSeconds": 2,
            "failureThreshold": 1,
        },
        "securityContext": restricted_security_context(),
        "volumeMounts": [
            {"name": "storage", "mountPath": "/data"},
            {"name": "model-data", "mountPath": "/models", "readOnly": True},
            {"name": "numba-cache", "mountPath": "/var/cache/numba"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    # numba needs a writable cache directory: copy the cache warmed at image build time
    # into an emptyDir (the root filesystem is read-only).
    warm_cache = {
        "name": "numba-cache",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["sh", "-c", "cp -a /opt/oasis-keda/numba-cache/. /var/cache/numba/"],
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "securityContext": restricted_security_context(),
        "volumeMounts": [{"name": "numba-cache", "mountPath": "/var/cache/numba"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(record, settings),
        "spec": {
            # KEDA and the HPA own the replica count; 0 until work arrives.
            "replicas": 0,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {MODEL_ANNOTATION: record.model_id},
                },
                "spec": {
                    "serviceAccountName": settings.service_account,
                    "terminationGracePeriodSeconds": settings.termination_grace_period_s,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "initContainers": [warm_cache],
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "storage",
                            "persistentVolumeClaim": {"claimName": settings.storage_claim},
                        },
                        {
                            "name": "model-data",
                            "persistentVolumeClaim": {
                                "claimName": settings.model_data_claim,
                                "readOnly": True,
                            },
                        },
                        {"name": "numba-cache", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }


def _hpa_behavior(settings: WorkerManifestSettings, max_replicas: int) -> Json:
    # Up: straight to the desired count (the scaler already says how many are worth
    # starting). Down: as fast as the scaler allows; it never asks for fewer than the busy
    # workers, and pod-deletion-cost makes the ReplicaSet take idle pods first.
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": settings.scale_up_stabilization_s,
            "tolerance": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": max_replicas, "periodSeconds": 15}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": settings.scale_down_stabilization_s,
            "tolerance": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }


def scaled_object(record: ModelRecord, settings: WorkerManifestSettings) -> Json:
    """The model's ScaledObject: 0 <-> 1 by KEDA, 1 <-> N by the HPA (metric = desired)."""
    low, high = replica_bounds(record.scaling)
    trigger: Json = {
        "type": "external-push",
        "metricType": "AverageValue",
        "metadata": {
            "scalerAddress": settings.effective_scaler_address,
            "model": record.model_id,
        },
    }
    if settings.trigger_authentication:
        trigger["authenticationRef"] = {"name": settings.trigger_authentication}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(record, settings),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": resource_name(record.model_id),
            },
            "pollingInterval": settings.polling_interval_s,
            "cooldownPeriod": settings.cooldown_period_s,
            "minReplicaCount": low,
            "maxReplicaCount": high,
            # On scaler errors keep what runs (never scale busy workers in on an outage),
            # and keep at least one worker going if there was one.
            "fallback": {
                "failureThreshold": settings.fallback_failure_threshold,
                "replicas": min(max(low, 1), high),
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {
                "restoreToOriginalReplicaCount": False,
                "horizontalPodAutoscalerConfig": {
                    "name": f"keda-hpa-{resource_name(record.model_id)}",
                    "behavior": _hpa_behavior(settings, high),
                },
            },
            "triggers": [trigger],
        },
    }


def model_manifests(record: ModelRecord, settings: WorkerManifestSettings) -> list[Json]:
    """Every object a model needs, in apply order."""
    return [worker_deployment(record, settings), scaled_object(record, settings)]


TOLERANCE_COMMENT = """\
tolerance 0: scale on every change of the desired count (metric = desired
workers, target 1). Per-HPA tolerance needs Kubernetes >= 1.35 (feature
HPAConfigurableTolerance, beta there); older clusters drop the field and apply
the global band (--horizontal-pod-autoscaler-tolerance, default 0.1): no change
while 0.9 <= desired/current <= 1.1, so 10 -> 11 or 20 -> 21 workers is ignored
until the count moves further. Lower that flag on such clusters if it matters."""

REPLICAS_COMMENT = "0 at creation; KEDA (0 <-> 1) and the HPA (1 <-> N) own the count."

HEADER_COMMENT = """\
Generated by `oasis-keda manifests model` from the model's registered configuration;
regenerate after changing the scaling configuration (min/max replicas)."""


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]


def to_yaml(objects: list[Json], *, header: str = HEADER_COMMENT) -> str:
    """Render objects as one multi-document YAML stream with explanatory comments."""
    documents = []
    for obj in objects:
        lines: list[str] = _comment(header, "")
        done: set[str] = set()
        text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)
        for line in text.splitlines():
            stripped = line.lstrip()
            indent = line[: len(line) - len(stripped)]
            if stripped.startswith("tolerance:") and "tolerance" not in done:
                lines.extend(_comment(TOLERANCE_COMMENT, indent))
                done.add("tolerance")
            if stripped.startswith("replicas: 0") and indent == "  " and "replicas" not in done:
                lines.extend(_comment(REPLICAS_COMMENT, indent))
                done.add("replicas")
            lines.append(line)
        documents.append("\n".join(lines) + "\n")
    return "---\n".join(documents)


#: The built-in synthetic model (``oasis-keda model synth``) shipped in manifests/base.
BUILTIN_MODEL_ID = "synth"
#: Its scaling configuration there: DYNAMIC_TASKS so a chunked analysis shows 0 -> N -> 0.
BUILTIN_SCALING = {
    "scaling_strategy": "DYNAMIC_TASKS",
    "worker_count_min": 0,
    "worker_count_max": 4,
    "chunks_per_worker": 2,
}


def builtin_record() -> ModelRecord:
    """The registry record the base manifests assume for the built-in model."""
    return ModelRecord(
        model_id=BUILTIN_MODEL_ID,
        pk=1,
        queue=f"oasis-keda.model.{BUILTIN_MODEL_ID}",
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
        model_dir=f"/models/{BUILTIN_MODEL_ID}",
        scaling=ScalingConfig.model_validate(BUILTIN_SCALING),
    )


if __name__ == "__main__":  # regenerate manifests/base/models/synth.yaml
    print(to_yaml(model_manifests(builtin_record(), WorkerManifestSettings())), end="")
