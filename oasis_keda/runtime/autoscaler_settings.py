"""Timings of the local autoscaler, from ``OASIS_KEDA_AUTOSCALER_*`` variables.

The local autoscaler plays KEDA and the HPA on one machine; these are the ScaledObject and
HPA timings it gives the k8s generator (shorter than a cluster's, so a local run scales
within seconds), plus the few knobs only a local run has (worker processes' concurrency,
RPC deadline, registry refresh). The shared loader
(:func:`oasis_keda.core.settings.from_env`) reads each field ``foo`` from
``OASIS_KEDA_AUTOSCALER_FOO``; the table is in docs/LOCAL_RUNTIME.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from oasis_keda.core.settings import ENV_PREFIX, from_env, replace_given
from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings

#: Prefix of the autoscaler's variables.
AUTOSCALER_ENV_PREFIX = f"{ENV_PREFIX}AUTOSCALER_"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoscalerSettings:
    """Timings of the local KEDA + HPA (variables ``OASIS_KEDA_AUTOSCALER_<FIELD>``)."""

    polling_interval_s: int = 1
    """ScaledObject ``pollingInterval``, seconds (``..._POLLING_INTERVAL_S``), default 1
    (KEDA's default is 30); at least 1."""
    cooldown_period_s: int = 5
    """ScaledObject ``cooldownPeriod``: idle seconds before the last worker stops
    (``..._COOLDOWN_PERIOD_S``), default 5."""
    scale_down_stabilization_s: int = 15
    """HPA ``scaleDown.stabilizationWindowSeconds``, seconds (``..._SCALE_DOWN_STABILIZATION_S``),
    default 15 (Kubernetes' default is 300): a dip in the backlog between two stages must
    last this long before a worker is stopped."""
    scale_up_stabilization_s: int = 0
    """HPA ``scaleUp.stabilizationWindowSeconds``, seconds (``..._SCALE_UP_STABILIZATION_S``),
    default 0 (as Kubernetes)."""
    fallback_failure_threshold: int = 3
    """Scaler errors in a row before ``fallback.replicas`` is served
    (``..._FALLBACK_FAILURE_THRESHOLD``), default 3."""
    worker_concurrency: int = 1
    """``--concurrency`` of each worker process (``..._WORKER_CONCURRENCY``), default 1: one
    chunk per process; at least 1."""
    grace_s: float = 600.0
    """``terminationGracePeriodSeconds``: how long a SIGTERMed worker may finish its chunk,
    seconds (``..._GRACE_S``), default 600."""
    rpc_timeout_s: float = 10.0
    """Deadline of each unary RPC, seconds (``..._RPC_TIMEOUT_S``), default 10 (KEDA sets
    none; a local run should not hang forever)."""
    registry_refresh_s: float = 1.0
    """How often the registry is re-read for new, changed or removed models, seconds
    (``..._REGISTRY_REFRESH_S``), default 1."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"autoscaler {field.name} must be >= 0")
        if self.polling_interval_s < 1 or self.worker_concurrency < 1:
            raise ValueError("autoscaler polling_interval_s and worker_concurrency must be >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build from environment variables (``OASIS_KEDA_AUTOSCALER_*``)."""
        return from_env(cls, env, prefix=AUTOSCALER_ENV_PREFIX)

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return replace_given(self, changes)

    def manifest_settings(self, scaler_address: str) -> WorkerManifestSettings:
        """The k8s generator's settings for a local ScaledObject."""
        return WorkerManifestSettings(
            scaler_address=scaler_address,
            polling_interval_s=self.polling_interval_s,
            cooldown_period_s=self.cooldown_period_s,
            scale_down_stabilization_s=self.scale_down_stabilization_s,
            scale_up_stabilization_s=self.scale_up_stabilization_s,
            fallback_failure_threshold=self.fallback_failure_threshold,
            concurrency=self.worker_concurrency,
        )
