"""The local autoscaler: KEDA and the HPA for one machine, against the real scaler.

Per registered model it builds the same ScaledObject the cluster gets (the k8s generator,
with timings suited to one machine), parses the fields KEDA and the HPA obey, and then
behaves like them over gRPC:

* every ``pollingInterval`` it calls GetMetricSpec, GetMetrics and IsActive (retrying once
  on error, as KEDA rebuilds its scaler and retries), and applies KEDA's scale executor and
  an HPA sync (:func:`oasis_keda.runtime.hpa.poll`);
* it holds StreamIsActive open (``external-push``): each pushed ``true`` scales 0 -> 1 at
  once; a broken stream reconnects with KEDA's 2 s .. 60 s backoff;
* the replicas are real worker processes (:class:`~oasis_keda.runtime.workers.WorkerPool`);
  on a scale-down idle workers go first, as pod-deletion-cost makes a cluster do.

Desired and actual workers go to Redis (``keys.RUNTIME_REPLICAS``) for ``oasis-keda
status``, and every decision is kept as a :class:`ScalingSample` for the demo's pictures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import grpc
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import ModelRecord, Registry
from oasis_keda.core.settings import ENV_PREFIX
from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings
from oasis_keda.kubectl.manifests import scaled_object
from oasis_keda.kubectl.names import resource_name
from oasis_keda.runtime import hpa
from oasis_keda.runtime.spec import ScaledObjectSpec, parse_scaled_object
from oasis_keda.runtime.workers import CommandFactory, WorkerPool
from scaler.proto import externalscaler_pb2 as pb
from scaler.proto import externalscaler_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

LOCAL_NAMESPACE = "local"
#: KEDA's reconnect backoff for a broken StreamIsActive.
STREAM_BACKOFF_MIN_S = 2.0
STREAM_BACKOFF_MAX_S = 60.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoscalerSettings:
    """Timings of the local KEDA + HPA (``OASIS_KEDA_AUTOSCALER_*``)."""

    polling_interval_s: int = 1
    """ScaledObject ``pollingInterval``, seconds (KEDA default 30; 1 on one machine)."""
    cooldown_period_s: int = 5
    """ScaledObject ``cooldownPeriod``: idle seconds before the last worker stops."""
    scale_down_stabilization_s: int = 15
    """HPA ``scaleDown.stabilizationWindowSeconds`` (Kubernetes default 300): a dip in the
    backlog between two stages must last this long before a worker is stopped."""
    scale_up_stabilization_s: int = 0
    """HPA ``scaleUp.stabilizationWindowSeconds`` (Kubernetes default 0)."""
    fallback_failure_threshold: int = 3
    """Scaler errors in a row before ``fallback.replicas`` is served."""
    worker_concurrency: int = 1
    """``--concurrency`` of each worker process (one chunk per process by default)."""
    grace_s: float = 600.0
    """``terminationGracePeriodSeconds``: how long a SIGTERMed worker may finish its chunk."""
    rpc_timeout_s: float = 10.0
    """Deadline of each unary RPC (KEDA sets none; a local run should not hang forever)."""
    registry_refresh_s: float = 1.0
    """How often the registry is re-read for new, changed or removed models, seconds."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"autoscaler {field.name} must be >= 0")
        if self.polling_interval_s < 1 or self.worker_concurrency < 1:
            raise ValueError("autoscaler polling_interval_s and worker_concurrency must be >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"{ENV_PREFIX}AUTOSCALER_{field.name.upper()}")
            if raw:
                kind = int if field.type in ("int", int) else float
                try:
                    values[field.name] = kind(raw)
                except ValueError:
                    raise ValueError(
                        f"{ENV_PREFIX}AUTOSCALER_{field.name.upper()} must be a number, got {raw!r}"
                    ) from None
        return cls(**values)

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


@dataclasses.dataclass(frozen=True)
class ScalingSample:
    """One autoscaler decision, for the workers-over-time picture."""

    at: float
    """Wall-clock time (Unix seconds)."""
    model_id: str
    metric: float | None
    """The scaler's metric (desired workers per the scaling strategy); None on error."""
    desired: int
    """Replicas the autoscaler set (the Deployment's ``spec.replicas``)."""
    actual: int
    """Live worker processes, including those finishing a chunk after SIGTERM."""
    reason: str


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


def read_runtime_replicas(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Desired and actual workers per model as the local autoscaler last published them.

    ``{model_id: {"desired", "actual", "metric", "active", "reason", "at"}}``; empty when no
    local runtime runs (in a cluster, ask the HPA). For ``oasis-keda status``.
    """
    result: dict[str, dict[str, Any]] = {}
    for raw_id, raw in client.hgetall(keys.RUNTIME_REPLICAS).items():
        model_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        try:
            result[model_id] = json.loads(raw)
        except (TypeError, ValueError):
            continue
    return result


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
        self.state = hpa.AutoscalerState(created_at=clock())
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

    async def _call_once(self) -> hpa.Observation:
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
        return hpa.Observation(active=active.result, metric_total=total, target=target)

    async def observe(self) -> hpa.Observation:
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
        return hpa.Observation(error=True)

    # -- applying decisions -----------------------------------------------------------------

    def _busy(self) -> set[str]:
        try:
            return read_busy_nodes(self.client, self.record.queue)
        except redis.RedisError:
            # without lease data every worker counts as busy: never pick one blindly
            return {w.name for w in self.pool.live}

    def _apply(self, decision: hpa.Decision, metric: float | None) -> None:
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
        self._publish(sample)

    def track_processes(self) -> None:
        """Record a sample when a worker process exited (or crashed) since the last one."""
        self.pool.reap()
        actual = len(self.pool.live)
        if actual != self.last_actual:
            self.last_actual = actual
            self._sample(self.last_metric, self.state.replicas, actual, "ProcessExit")

    def _publish(self, sample: ScalingSample) -> None:
        payload = dataclasses.asdict(sample) | {"active": self.state.last_active_at is not None}
        payload.pop("model_id")
        try:
            self.client.hset(keys.RUNTIME_REPLICAS, self.model_id, json.dumps(payload))
        except redis.RedisError as exc:
            logger.debug("could not publish replicas of %s: %s", self.model_id, exc)

    async def poll_once(self) -> hpa.Decision:
        obs = await self.observe()
        metric = None if obs.error else obs.metric_total
        async with self.lock:
            decision = hpa.poll(self.spec, self.state, obs, self.clock())
            self._apply(decision, metric)
        return decision

    async def on_push(self, active: bool) -> None:
        async with self.lock:
            decision = hpa.push(self.spec, self.state, active, self.clock())
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


class LocalAutoscaler:
    """Every registered model's autoscaler; the models are re-read from the registry."""

    def __init__(
        self,
        *,
        settings: AutoscalerSettings,
        client: redis.Redis,
        scaler_address: str,
        command: CommandFactory,
        env: Mapping[str, str],
        log_dir: Path,
        samples_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.scaler_address = scaler_address
        self.command = command
        self.env = dict(env)
        self.log_dir = log_dir
        self.samples_path = samples_path
        self.samples: list[ScalingSample] = []
        self.models: dict[str, ModelAutoscaler] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._channel: grpc.aio.Channel | None = None

    def _record_sample(self, sample: ScalingSample) -> None:
        self.samples.append(sample)
        if self.samples_path is not None:
            with self.samples_path.open("a") as fh:
                fh.write(json.dumps(dataclasses.asdict(sample)) + "\n")

    def _add(self, record: ModelRecord, stub: pb_grpc.ExternalScalerStub) -> None:
        pool = WorkerPool(
            record.model_id,
            command=self.command,
            env=self.env,
            log_dir=self.log_dir,
            grace_s=self.settings.grace_s,
        )
        model = ModelAutoscaler(
            record,
            settings=self.settings,
            stub=stub,
            scaler_address=self.scaler_address,
            client=self.client,
            pool=pool,
            on_sample=self._record_sample,
        )
        self.models[record.model_id] = model
        self._tasks[record.model_id] = asyncio.create_task(
            model.run(), name=f"autoscaler-{resource_name(record.model_id)}"
        )
        logger.info(
            "autoscaling model %s (queue %s, replicas %d..%d)",
            record.model_id,
            record.queue,
            model.spec.min_replica_count,
            model.spec.max_replica_count,
        )

    async def _remove(self, model_id: str) -> None:
        task = self._tasks.pop(model_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        model = self.models.pop(model_id)
        await asyncio.to_thread(model.pool.stop_all, grace_s=self.settings.grace_s)
        self.client.hdel(keys.RUNTIME_REPLICAS, model_id)

    async def run(self) -> None:
        """Follow the registry until cancelled; then stop every worker (warm shutdown)."""
        self._channel = grpc.aio.insecure_channel(self.scaler_address)
        stub = pb_grpc.ExternalScalerStub(self._channel)
        registry = Registry(self.client)
        try:
            while True:
                try:
                    records = {r.model_id: r for r in registry.list()}
                except redis.RedisError as exc:
                    logger.warning("cannot read the model registry: %s", exc)
                    records = None
                if records is not None:
                    for model_id, record in records.items():
                        if model_id in self.models:
                            self.models[model_id].update(record)
                        else:
                            self._add(record, stub)
                    for model_id in set(self.models) - set(records):
                        await self._remove(model_id)
                await asyncio.sleep(self.settings.registry_refresh_s)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Cancel every loop and take every model's workers to 0 (warm shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.gather(
            *(
                asyncio.to_thread(m.pool.stop_all, grace_s=self.settings.grace_s)
                for m in self.models.values()
            )
        )
        with contextlib.suppress(redis.RedisError):
            if self.models:
                self.client.hdel(keys.RUNTIME_REPLICAS, *self.models)
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def kill_all(self) -> None:
        """SIGKILL every worker now (a second interrupt during the warm shutdown)."""
        for model in list(self.models.values()):
            model.pool.kill_all()

    def track_processes(self) -> None:
        """Notice worker exits between polls (warm shutdowns finishing, crashes)."""
        for model in list(self.models.values()):
            model.track_processes()

    def live_workers(self) -> int:
        return sum(len(m.pool.live) for m in self.models.values())
