"""Ask the scaler what KEDA would hear: the desired workers for one ScaledObject.

The plugin sends the same calls KEDA sends (GetMetricSpec, then GetMetrics with the
ScaledObject's own trigger metadata), so what ``kubectl oasis status`` prints is what the
HPA gets. ``desired = ceil(sum(metric values) / target)``, the HPA's AverageValue rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import grpc

from scaler.proto import externalscaler_pb2 as pb
from scaler.proto import externalscaler_pb2_grpc as pb_grpc

DEFAULT_DEADLINE_S = 3.0


@dataclasses.dataclass(frozen=True)
class ScalerReading:
    """Desired workers from the scaler, or why there is none."""

    desired: int | None
    error: str = ""
    unreachable: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScalerEndpoint:
    """Where the scaler listens (e.g. ``localhost:6000`` after ``kubectl port-forward``)."""

    address: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    deadline_s: float = DEFAULT_DEADLINE_S

    def channel(self) -> grpc.Channel:
        if not (self.ca_file or self.cert_file):
            return grpc.insecure_channel(self.address)
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )
        return grpc.secure_channel(self.address, creds)


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def read_desired(
    channel: grpc.Channel,
    *,
    name: str,
    namespace: str,
    metadata: Mapping[str, str],
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> ScalerReading:
    """Desired workers for one ScaledObject; errors come back as a reading, never raised."""
    stub = pb_grpc.ExternalScalerStub(channel)
    ref = pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=dict(metadata))
    try:
        spec = stub.GetMetricSpec(ref, timeout=deadline_s)
        if not spec.metricSpecs:
            return ScalerReading(None, "scaler returned no metric spec")
        first = spec.metricSpecs[0]
        target = first.targetSizeFloat if first.targetSizeFloat > 0 else float(first.targetSize)
        metrics = stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=ref, metricName=first.metricName),
            timeout=deadline_s,
        )
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        unreachable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        label = code.name if code is not None else "ERROR"
        return ScalerReading(None, f"{label}: {details}", unreachable=unreachable)
    if target <= 0:
        return ScalerReading(None, f"scaler metric target {target} is not positive")
    # KEDA >= 2.17 reads the float field when > 0, older versions the int64 one.
    total = sum(
        v.metricValueFloat if v.metricValueFloat > 0 else float(v.metricValue)
        for v in metrics.metricValues
    )
    return ScalerReading(math.ceil(total / target - 1e-9))
