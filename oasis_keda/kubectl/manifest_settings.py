"""Cluster-side choices for a model's worker objects: :class:`WorkerManifestSettings`.

The model's registry record says how many workers it may have; everything else a cluster
needs (namespace, image, resources, volume claims, secrets, the scaler's address and the
KEDA/HPA timings) is chosen here, with defaults that match the committed base manifests.
``oasis-keda manifests model`` fills it from its options and the local runtime from its
own timings; :mod:`oasis_keda.kubectl.manifests` turns it into objects. Values are checked
when the settings are made, so a bad option fails before any YAML is printed.
"""

from __future__ import annotations

import dataclasses
import re

#: Kubernetes' int32 fields (replica counts, periods, thresholds) hold at most this.
INT32_MAX = 2**31 - 1
#: The most worker processes one pod may run (``--concurrency``).
MAX_CONCURRENCY = 256


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerManifestSettings:
    """Cluster-side choices for a model's worker Deployment and ScaledObject."""

    # where the objects go, what they run and which scaler they ask
    namespace: str = "oasis"
    """Namespace of every object (default ``oasis``)."""

    image: str = "oasis-keda:latest"
    """Container image holding all components (default ``oasis-keda:latest``)."""

    image_pull_policy: str = "IfNotPresent"
    """``imagePullPolicy`` of the worker containers (minikube uses ``Never``)."""

    scaler_address: str = ""
    """``host:port`` of the scaler; empty = its headless Service in ``namespace``, port 6000."""

    # KEDA and HPA timings: the local runtime (``oasis-keda up``) sets these from its own
    # settings, so that it scales as a cluster with the same ScaledObject would
    polling_interval_s: int = 15
    """ScaledObject ``pollingInterval`` (KEDA default 30 s; push activation makes 0 -> 1 fast)."""

    cooldown_period_s: int = 120
    """ScaledObject ``cooldownPeriod``: idle time before the last worker goes (1 -> 0)."""

    scale_down_stabilization_s: int = 60
    """HPA ``scaleDown.stabilizationWindowSeconds`` (Kubernetes default 300 s)."""

    scale_up_stabilization_s: int = 0
    """HPA ``scaleUp.stabilizationWindowSeconds`` (Kubernetes default 0 s)."""

    fallback_failure_threshold: int = 3
    """Scaler errors in a row before KEDA serves ``fallback.replicas``."""

    # the worker pods
    termination_grace_period_s: int = 900
    """Worker ``terminationGracePeriodSeconds``: longer than one chunk, so that Celery's warm
    shutdown on SIGTERM finishes the running chunk before the kubelet kills the pod."""

    concurrency: int = 1
    """Celery worker concurrency (``--concurrency``); one chunk per core is the Oasis default."""

    cpu_request: str = "1"
    """Worker CPU request (default ``1``)."""

    cpu_limit: str = "2"
    """Worker CPU limit (default ``2``)."""

    memory_request: str = "2Gi"
    """Worker memory request (default ``2Gi``)."""

    memory_limit: str = "4Gi"
    """Worker memory limit (default ``4Gi``)."""

    # what the pods mount and use: claims, secrets, service account, scaler TLS
    storage_claim: str = "oasis-storage"
    """ReadWriteMany PVC holding ``OASIS_KEDA_STORAGE_DIR`` (shared with the API/controller)."""

    model_data_claim: str = "oasis-model-data"
    """PVC holding the model data directories, mounted read-only at ``/models``."""

    redis_secret: str = "oasis-redis"
    """Secret with the Redis password under key ``password``."""

    service_account: str = "oasis-worker"
    """Service account bound to the pod-deletion-cost Role (patch pods, nothing else)."""

    trigger_authentication: str = ""
    """TriggerAuthentication name for mTLS to the scaler; empty = plaintext gRPC."""

    def __post_init__(self) -> None:
        # the bounds the API server would enforce (int32 fields, stabilization windows
        # <= 1 hour), and the ones that make no sense for a worker (a poll every 0 s, no
        # worker process, more processes than MAX_CONCURRENCY)
        checks = {
            "polling_interval_s": 1 <= self.polling_interval_s <= INT32_MAX,
            "cooldown_period_s": 0 <= self.cooldown_period_s <= INT32_MAX,
            "scale_down_stabilization_s": 0 <= self.scale_down_stabilization_s <= 3600,
            "scale_up_stabilization_s": 0 <= self.scale_up_stabilization_s <= 3600,
            "fallback_failure_threshold": 1 <= self.fallback_failure_threshold <= INT32_MAX,
            "termination_grace_period_s": 1 <= self.termination_grace_period_s <= INT32_MAX,
            "concurrency": 1 <= self.concurrency <= MAX_CONCURRENCY,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid worker manifest settings: {', '.join(bad)}")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a DNS-1123 label")

    @property
    def effective_scaler_address(self) -> str:
        """``scaler_address``, else the scaler's Service in the namespace (port 6000)."""
        return self.scaler_address or f"oasis-scaler.{self.namespace}.svc.cluster.local:6000"
