"""The gRPC servicer: KEDA's ExternalScaler over our decisions.

The one place where errors become status codes: missing or empty ``model`` metadata is
INVALID_ARGUMENT, an unregistered model NOT_FOUND, an unreachable broker UNAVAILABLE (never
a made-up 0: KEDA's ``fallback`` then holds the replicas), an unreadable stored record
FAILED_PRECONDITION. GetMetrics returns the desired workers with target 1, so that KEDA's
default ``metricType: AverageValue`` makes the HPA land on exactly that count.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import NoReturn

import grpc

from oasis_keda.errors import BrokerUnavailableError, ModelNotFoundError
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.activity import ActivityHub
from scaler.deciding import Decider, Decision
from scaler.errors import MetadataError, StoredConfigError

logger = logging.getLogger(__name__)

MODEL_KEY = "model"
METRIC_NAME = "oasis-desired-workers"


def model_id_from(metadata: Mapping[str, str]) -> str:
    """The model named by the ScaledObject's trigger metadata."""
    model_id = metadata.get(MODEL_KEY, "").strip()
    if not model_id:
        raise MetadataError(
            f"scalerMetadata key {MODEL_KEY!r} is missing or empty: set the trigger's "
            f"metadata.{MODEL_KEY} to a registered model id"
        )
    return model_id


async def _abort(context: grpc.aio.ServicerContext[object, object], exc: Exception) -> NoReturn:
    if isinstance(exc, MetadataError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, ModelNotFoundError):
        await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, BrokerUnavailableError):
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, StoredConfigError):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    raise exc


class ExternalScalerService(pb_grpc.ExternalScalerServicer):
    """KEDA's ExternalScaler. ``on_redis`` is told whether each Redis read succeeded."""

    def __init__(
        self,
        decider: Decider,
        hub: ActivityHub,
        *,
        on_redis: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        self.decider = decider
        self.hub = hub
        self.on_redis = on_redis

    async def _decide(self, ref: pb.ScaledObjectRef) -> Decision:
        model_id = model_id_from(ref.scalerMetadata)
        try:
            decision = await self.decider.decide(model_id)
        except BrokerUnavailableError:
            self.on_redis(False)
            raise
        self.on_redis(True)
        return decision

    async def _guarded(
        self, ref: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> Decision:
        try:
            return await self._decide(ref)
        except (MetadataError, ModelNotFoundError, BrokerUnavailableError,
                StoredConfigError) as exc:  # fmt: skip
            logger.debug("%s for %s: %s", type(exc).__name__, ref.name, exc)
            await _abort(context, exc)

    async def IsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.IsActiveResponse:
        decision = await self._guarded(request, context)
        return pb.IsActiveResponse(result=decision.active)

    async def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetMetricSpecResponse:
        await self._guarded(request, context)
        spec = pb.MetricSpec(metricName=METRIC_NAME, targetSize=1, targetSizeFloat=1.0)
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetMetricsResponse:
        decision = await self._guarded(request.scaledObjectRef, context)
        value = pb.MetricValue(
            metricName=request.metricName or METRIC_NAME,
            metricValue=decision.desired,
            metricValueFloat=float(decision.desired),
        )
        return pb.GetMetricsResponse(metricValues=[value])

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.IsActiveResponse]:
        # Watch first, then read: a change between the two still wakes the stream.
        model_id = model_id_from_or_none(request.scalerMetadata)
        if model_id is None:
            await self._guarded(request, context)  # aborts with INVALID_ARGUMENT
            return
        with self.hub.watch(model_id) as watch:
            decision = await self._guarded(request, context)
            watch.follow_queue(decision.queue)
            last = decision.active
            yield pb.IsActiveResponse(result=last)
            while True:
                await watch.wait()
                decision = await self._guarded(request, context)
                watch.follow_queue(decision.queue)
                if decision.active != last:
                    last = decision.active
                    yield pb.IsActiveResponse(result=last)

    async def StreamMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.GetMetricSpecResponse]:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "StreamMetricSpec is not supported: use GetMetricSpec"
        )
        yield pb.GetMetricSpecResponse()  # pragma: no cover - abort raises


def model_id_from_or_none(metadata: Mapping[str, str]) -> str | None:
    try:
        return model_id_from(metadata)
    except MetadataError:
        return None
