"""Settings of one scaler process, from ``OASIS_KEDA_*`` variables or CLI flags."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from oasis_keda.core.settings import DEFAULT_REDIS_URL, ENV_PREFIX


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScalerSettings:
    """Everything ``oasis-keda scaler serve`` needs."""

    redis_url: str = DEFAULT_REDIS_URL
    """Broker and registry (``OASIS_KEDA_REDIS_URL``)."""
    host: str = "0.0.0.0"
    """Listen address (``OASIS_KEDA_SCALER_HOST``), default all interfaces."""
    port: int = 9090
    """gRPC port (``OASIS_KEDA_SCALER_PORT``), default 9090; 0 picks a free one."""
    tls_cert: str = ""
    """PEM server certificate (``OASIS_KEDA_SCALER_TLS_CERT``); empty = plaintext."""
    tls_key: str = ""
    """PEM private key of ``tls_cert`` (``OASIS_KEDA_SCALER_TLS_KEY``)."""
    tls_client_ca: str = ""
    """PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."""
    redis_timeout_s: float = 1.0
    """Socket and per-call timeout for Redis, seconds (``OASIS_KEDA_SCALER_REDIS_TIMEOUT_S``).
    Keeps every RPC's answer (UNAVAILABLE on a dead broker) within 2 s."""
    snapshot_refresh_s: float = 0.8
    """Under a global limit: age after which the all-model snapshot is re-read in the
    background, seconds (``OASIS_KEDA_SCALER_SNAPSHOT_REFRESH_S``)."""
    snapshot_max_age_s: float = 1.0
    """Under a global limit: oldest snapshot GetMetrics/IsActive may be answered from,
    seconds; 0 = always read (``OASIS_KEDA_SCALER_SNAPSHOT_MAX_AGE_S``)."""
    poll_interval_s: float = 1.0
    """StreamIsActive re-check period when keyspace notifications are unavailable, seconds."""
    recheck_interval_s: float = 5.0
    """StreamIsActive safety re-check period with notifications on (lease expiry emits none)."""
    health_interval_s: float = 1.0
    """Period of the Redis probe behind the gRPC health status, seconds."""
    grace_s: float = 5.0
    """Shutdown grace for in-flight RPCs, seconds (keep below terminationGracePeriodSeconds)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.snapshot_max_age_s < 0 or self.snapshot_refresh_s < 0:
            raise ValueError("snapshot_refresh_s and snapshot_max_age_s must be >= 0")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("redis_timeout_s", "poll_interval_s", "recheck_interval_s",
                     "health_interval_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build from environment variables (``OASIS_KEDA_REDIS_URL``, ``..._SCALER_*``)."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = "REDIS_URL" if field.name == "redis_url" else f"SCALER_{field.name.upper()}"
            raw = env.get(ENV_PREFIX + name)
            if raw is None or raw == "":
                continue
            try:
                values[field.name] = _convert(field.type, raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{name}: {exc}") from exc
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _convert(kind: Any, raw: str) -> Any:
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    return raw
