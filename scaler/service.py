"""The gRPC servicer: KEDA's ExternalScaler over our decisions.

The one place where errors become status codes: missing or empty ``model`` metadata is
INVALID_ARGUMENT, an unregistered model NOT_FOUND, an unreachable broker UNAVAILABLE (never
a made-up 0: KEDA's ``fallback`` then holds the replicas), an unreadable stored record
FAILED_PRECONDITION. GetMetrics returns the desired workers with target 1, so that KEDA's
default ``metricType: AverageValue`` makes the HPA land on exactly that count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping

import grpc

from oasis_keda.core.errors import BrokerUnavailableError, ModelNotFoundError
from scaler.activity import ActivityHub
from scaler.deciding import Decider, Decision
from scaler.errors import MetadataError, RegistryNotLoadedError, StoredConfigError
from scaler.metrics import REDIS_ERRORS, observe, timed
from scaler.proto import externalscaler_pb2 as pb
from scaler.proto import externalscaler_pb2_grpc as pb_grpc

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


_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (MetadataError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (BrokerUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (RegistryNotLoadedError, grpc.StatusCode.UNAVAILABLE),
    (StoredConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)
_EXPECTED = tuple(kind for kind, _ in _STATUS)


def status_for(exc: Exception) -> grpc.StatusCode:
    """The gRPC status code for one of our errors."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


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

    async def _decide(self, ref: pb.ScaledObjectRef, *, fresh: bool = False) -> Decision:
        model_id = model_id_from(ref.scalerMetadata)
        try:
            decision = await self.decider.decide(model_id, fresh=fresh)
        except BrokerUnavailableError:
            self.on_redis(False)
            REDIS_ERRORS.inc()
            raise
        self.on_redis(True)
        observe([decision])
        return decision

    async def _guarded(
        self, ref: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> Decision:
        try:
            return await self._decide(ref)
        except _EXPECTED as exc:
            logger.debug("%s for %s: %s", type(exc).__name__, ref.name, exc)
            await context.abort(status_for(exc), str(exc))
            raise  # pragma: no cover - abort raises

    @timed
    async def IsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.IsActiveResponse:
        decision = await self._guarded(request, context)
        return pb.IsActiveResponse(result=decision.active)

    @timed
    async def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetMetricSpecResponse:
        await self._guarded(request, context)
        spec = pb.MetricSpec(metricName=METRIC_NAME, targetSize=1, targetSizeFloat=1.0)
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    @timed
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
        # Errors end the stream with a status (set_code, not abort: aborting from inside
        # an async-generator handler wedges grpc.aio here). KEDA then reconnects.
        try:
            model_id = model_id_from(request.scalerMetadata)
            # Watch first, then read: a change between the two still wakes the stream.
            with self.hub.watch(model_id) as watch:
                decision = await self._decide(request, fresh=True)
                watch.follow_queue(decision.queue)
                last = decision.active
                yield pb.IsActiveResponse(result=last)
                while True:
                    await watch.wait()
                    decision = await self._decide(request, fresh=True)
                    watch.follow_queue(decision.queue)
                    if decision.active != last:
                        last = decision.active
                        yield pb.IsActiveResponse(result=last)
        except _EXPECTED as exc:
            logger.debug("stream for %s ends: %s", request.name, exc)
            context.set_code(status_for(exc))
            context.set_details(str(exc))

    async def StreamMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.GetMetricSpecResponse]:
        await asyncio.sleep(0)  # finishing before the first await wedges grpc.aio's close
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("StreamMetricSpec is not supported: use GetMetricSpec")
        return
        yield pb.GetMetricSpecResponse()  # pragma: no cover - makes this a stream handler
