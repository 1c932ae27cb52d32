"""One model's local autoscaler: KEDA's scale loop, its push stream and the HPA.

For one registered model this builds the ScaledObject a cluster would get (the k8s
generator, with the local timings), reads from it what KEDA and the HPA obey, and then
behaves like them against the real scaler over gRPC: a poll every ``pollingInterval``
(GetMetricSpec, GetMetrics, IsActive, one retry), a StreamIsActive held open for pushed
activations, and the pure rules of :mod:`oasis_keda.runtime.keda` (with
:mod:`oasis_keda.runtime.hpa` behind it) to turn both into a replica count. The replicas
are worker processes (:class:`~oasis_keda.runtime.workers.WorkerPool`); a scale-down stops
idle ones first, as pod-deletion-cost makes a cluster do. Following the registry and running many models is
:mod:`oasis_keda.runtime.autoscaler`'s job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import ModelRecord
from oasis_keda.kubectl.manifests import scaled_object
from oasis_keda.runtime import keda
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.replicas import ScalingSample, publish_sample
from oasis_keda.runtime.spec import ScaledObjectSpec, parse_scaled_object
from oasis_keda.runtime.workers import WorkerPool
from scaler.proto import externalscaler_pb2 as pb
from scaler.proto import externalscaler_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

#: Namespace of the ScaledObjectRef sent to the scaler (there is no cluster namespace).
LOCAL_NAMESPACE = "local"
#: KEDA's reconnect backoff for a broken StreamIsActive.
STREAM_BACKOFF_MIN_S = 2.0
STREAM_BACKOFF_MAX_S = 60.0


def model_scaled_object(
    record: ModelRecord, settings: AutoscalerSettings, scaler_address: str
) -> dict[str, Any]:
    """The ScaledObject a cluster would get for ``record``, with local timings."""
    return scaled_object(record, settings.manifest_settings(scaler_address))


def scaler_ref(manifest: Mapping[str, Any]) -> pb.ScaledObjectRef:
    """The ScaledObjectRef KEDA sends for this ScaledObject's first trigger."""
    trigger = manifest["spec"]["triggers"][0]
    return pb.ScaledObjectRef(
        name=manifest["metadata"]["name"],
        namespace=LOCAL_NAMESPACE,
        scalerMetadata={str(k): str(v) for k, v in trigger.get("metadata", {}).items()},
    )


def read_busy_nodes(client: redis.Redis, queue: str) -> set[str]:
    """Worker nodes holding a live busy or task lease on ``queue``."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    with client.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(keys.leases_busy(queue), now_ms, "+inf")
        pipe.zrangebyscore(keys.leases_tasks(queue), now_ms, "+inf")
        busy, tasks = pipe.execute()
    nodes = {m.decode() if isinstance(m, bytes) else str(m) for m in busy}
    for member in tasks:
        text = member.decode() if isinstance(member, bytes) else str(member)
        nodes.add(text.split("|", 1)[0])
    return nodes


class ModelAutoscaler:
    """KEDA's scale loop, its push stream and the HPA for one model."""

    def __init__(
        self,
        record: ModelRecord,
        *,
        settings: AutoscalerSettings,
        stub: pb_grpc.ExternalScalerStub,
        scaler_address: str,
        client: redis.Redis,
        pool: WorkerPool,
        on_sample: Callable[[ScalingSample], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stub = stub
        self.scaler_address = scaler_address
        self.client = client
        self.pool = pool
        self.on_sample = on_sample
        self.clock = clock
        self.record = record
        self.spec, self.ref = self._build(record)
        self.state = keda.AutoscalerState(created_at=clock())
        self.lock = asyncio.Lock()  # KEDA's scalingMutex: poll and push never interleave
        self.last_metric: float | None = None
        self.last_actual = 0
        self.peak = 0

    def _build(self, record: ModelRecord) -> tuple[ScaledObjectSpec, pb.ScaledObjectRef]:
        manifest = model_scaled_object(record, self.settings, self.scaler_address)
        return parse_scaled_object(manifest), scaler_ref(manifest)

    def update(self, record: ModelRecord) -> None:
        """A changed registration: re-read the ScaledObject, keep the scaling history."""
        if record != self.record:
            self.record = record
            self.spec, self.ref = self._build(record)

    @property
    def model_id(self) -> str:
        return self.record.model_id

    # -- the scaler's answers -------------------------------------------------------------

    async def _call_once(self) -> keda.Observation:
        timeout = self.settings.rpc_timeout_s
        spec_resp = await self.stub.GetMetricSpec(self.ref, timeout=timeout)
        if not spec_resp.metricSpecs:
            raise ValueError("GetMetricSpec returned no metric")
        metric = spec_resp.metricSpecs[0]
        target = metric.targetSizeFloat if metric.targetSizeFloat > 0 else float(metric.targetSize)
        if target <= 0:
            raise ValueError(f"GetMetricSpec returned target {target}")
        values = await self.stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=self.ref, metricName=metric.metricName),
            timeout=timeout,
        )
        total = sum(
            v.metricValueFloat if v.metricValueFloat > 0 else float(v.metricValue)
            for v in values.metricValues
        )
        active = await self.stub.IsActive(self.ref, timeout=timeout)
        return keda.Observation(active=active.result, metric_total=total, target=target)

    async def observe(self) -> keda.Observation:
        """GetMetricSpec, GetMetrics, IsActive; one retry on error, as KEDA does."""
        for attempt in (1, 2):
            try:
                return await self._call_once()
            except (grpc.RpcError, ValueError) as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                logger.log(
                    logging.DEBUG if attempt == 1 else logging.WARNING,
                    "scaler call for model %s failed (attempt %d): %s %s",
                    self.model_id,
                    attempt,
                    code,
                    exc.details() if isinstance(exc, grpc.aio.AioRpcError) else exc,
                )
        return keda.Observation(error=True)

    # -- applying decisions -----------------------------------------------------------------

    def stop_workers(self, grace_s: float) -> None:
        """Warm-stop every worker of the model, logging which ones were busy."""
        self.pool.stop_all(grace_s=grace_s, busy_nodes=self._busy())

    def _busy(self) -> set[str]:
        try:
            return read_busy_nodes(self.client, self.record.queue)
        except redis.RedisError:
            # without lease data every worker counts as busy: never pick one blindly
            return {w.name for w in self.pool.live}

    def _apply(self, decision: keda.Decision, metric: float | None) -> None:
        before = self.state.replicas
        self.state = decision.state
        self.pool.enforce_grace()
        busy = self._busy() if decision.replicas < len(self.pool.running) else set()
        self.pool.scale_to(decision.replicas, busy)
        actual = len(self.pool.live)
        self.peak = max(self.peak, actual)
        self.last_actual = actual
        if metric is not None:
            self.last_metric = metric
        if decision.replicas != before:
            logger.info(
                "model %s: replicas %d -> %d (%s; metric %s, actual %d)",
                self.model_id,
                before,
                decision.replicas,
                decision.reason,
                metric,
                actual,
            )
        self._sample(metric, decision.replicas, actual, decision.reason)

    def _sample(self, metric: float | None, desired: int, actual: int, reason: str) -> None:
        sample = ScalingSample(
            at=time.time(),
            model_id=self.model_id,
            metric=metric,
            desired=desired,
            actual=actual,
            reason=reason,
        )
        self.on_sample(sample)
        publish_sample(self.client, sample, active=self.state.last_active_at is not None)

    def track_processes(self) -> None:
        """Record a sample when a worker process exited (or crashed) since the last one."""
        self.pool.reap()
        actual = len(self.pool.live)
        if actual != self.last_actual:
            self.last_actual = actual
            self._sample(self.last_metric, self.state.replicas, actual, "ProcessExit")

    async def poll_once(self) -> keda.Decision:
        obs = await self.observe()
        metric = None if obs.error else obs.metric_total
        async with self.lock:
            decision = keda.poll(self.spec, self.state, obs, self.clock())
            self._apply(decision, metric)
        return decision

    async def on_push(self, active: bool) -> None:
        async with self.lock:
            decision = keda.push(self.spec, self.state, active, self.clock())
            self._apply(decision, None if not active else self.last_metric)

    # -- loops ----------------------------------------------------------------------------

    async def poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # one bad step must not stop the model's scaling
                logger.exception("autoscaler step for model %s failed", self.model_id)
            await asyncio.sleep(self.spec.polling_interval_s)

    async def stream_loop(self) -> None:
        backoff = STREAM_BACKOFF_MIN_S
        while True:
            try:
                async for message in self.stub.StreamIsActive(self.ref):
                    backoff = STREAM_BACKOFF_MIN_S
                    await self.on_push(message.result)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                logger.debug("StreamIsActive for %s broke (%s)", self.model_id, code)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, STREAM_BACKOFF_MAX_S)

    async def run(self) -> None:
        await asyncio.gather(self.poll_loop(), self.stream_loop())
