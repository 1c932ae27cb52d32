"""Settings of one scaler process, from ``OASIS_KEDA_*`` variables or CLI flags.

Read by the shared loader (:func:`oasis_keda.core.settings.from_env`): every field ``foo``
comes from ``OASIS_KEDA_SCALER_FOO``, except the Redis URL, which is the one all processes
share (``OASIS_KEDA_REDIS_URL``). What the timings are for is in docs/SCALER.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from oasis_keda.core.settings import DEFAULT_REDIS_URL, ENV_PREFIX, env_var, from_env, replace_given

#: Prefix of the scaler's own variables.
SCALER_ENV_PREFIX = f"{ENV_PREFIX}SCALER_"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScalerSettings:
    """Everything ``oasis-keda scaler serve`` needs (variables ``OASIS_KEDA_SCALER_<FIELD>``)."""

    redis_url: str = dataclasses.field(
        default=DEFAULT_REDIS_URL, metadata=env_var(f"{ENV_PREFIX}REDIS_URL")
    )
    """Broker and registry (``OASIS_KEDA_REDIS_URL``), default ``redis://127.0.0.1:6379/0``."""
    host: str = "0.0.0.0"
    """Listen address (``OASIS_KEDA_SCALER_HOST``), default ``0.0.0.0`` (all interfaces)."""
    port: int = 9090
    """gRPC port (``OASIS_KEDA_SCALER_PORT``), default 9090; 0 picks a free one."""
    tls_cert: str = ""
    """PEM server certificate file (``OASIS_KEDA_SCALER_TLS_CERT``); default empty = plaintext."""
    tls_key: str = ""
    """PEM private key file of ``tls_cert`` (``OASIS_KEDA_SCALER_TLS_KEY``), default empty."""
    tls_client_ca: str = ""
    """PEM CA bundle file (``OASIS_KEDA_SCALER_TLS_CLIENT_CA``); when set, clients must
    present a certificate it signed (mTLS). Default empty: no client certificates."""
    redis_timeout_s: float = 1.0
    """Socket and per-call timeout for Redis, seconds (``OASIS_KEDA_SCALER_REDIS_TIMEOUT_S``),
    default 1.0. Keeps every RPC's answer (UNAVAILABLE on a dead broker) within 2 s."""
    snapshot_refresh_s: float = 0.8
    """Under a global limit: age after which the all-model snapshot is re-read in the
    background, seconds (``OASIS_KEDA_SCALER_SNAPSHOT_REFRESH_S``), default 0.8."""
    snapshot_max_age_s: float = 1.0
    """Under a global limit: oldest snapshot GetMetrics/IsActive may be answered from,
    seconds (``OASIS_KEDA_SCALER_SNAPSHOT_MAX_AGE_S``), default 1.0; 0 = always read."""
    poll_interval_s: float = 1.0
    """StreamIsActive re-check period when keyspace notifications are unavailable, seconds
    (``OASIS_KEDA_SCALER_POLL_INTERVAL_S``), default 1.0."""
    recheck_interval_s: float = 5.0
    """StreamIsActive safety re-check period with notifications on (lease expiry emits
    none), seconds (``OASIS_KEDA_SCALER_RECHECK_INTERVAL_S``), default 5.0."""
    health_interval_s: float = 1.0
    """Period of the Redis probe behind the gRPC health status, seconds
    (``OASIS_KEDA_SCALER_HEALTH_INTERVAL_S``), default 1.0."""
    start_allowance_s: float = 60.0
    """Under a global limit: how long a raised grant keeps its capacity while its workers
    start, seconds (``OASIS_KEDA_SCALER_START_ALLOWANCE_S``), default 60; workers count
    themselves once their first heartbeat is in. Cover the pods' start time."""
    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint (``OASIS_KEDA_SCALER_METRICS_PORT``); default
    0: off."""
    grace_s: float = 5.0
    """Shutdown grace for in-flight RPCs, seconds (``OASIS_KEDA_SCALER_GRACE_S``), default
    5.0; keep it below the pod's terminationGracePeriodSeconds."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.snapshot_max_age_s < 0 or self.snapshot_refresh_s < 0:
            raise ValueError("snapshot_refresh_s and snapshot_max_age_s must be >= 0")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("redis_timeout_s", "poll_interval_s", "recheck_interval_s",
                     "health_interval_s", "start_allowance_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build from environment variables (``OASIS_KEDA_REDIS_URL``, ``..._SCALER_*``)."""
        return from_env(cls, env, prefix=SCALER_ENV_PREFIX)

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return replace_given(self, changes)
