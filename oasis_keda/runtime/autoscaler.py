"""The local autoscaler: KEDA and the HPA for one machine, against the real scaler.

``oasis-keda up`` runs it inside its own process, which so owns the worker processes. It
follows the model registry and runs one
:class:`~oasis_keda.runtime.model_autoscaler.ModelAutoscaler` per registered model, which
builds the same ScaledObject the cluster gets (the k8s generator, with timings suited to
one machine) and behaves like KEDA and the HPA over gRPC:

* every ``pollingInterval`` it calls GetMetricSpec, GetMetrics and IsActive (retrying once
  on error, as KEDA rebuilds its scaler and retries), and applies KEDA's scale executor and
  an HPA sync (:func:`oasis_keda.runtime.keda.poll`);
* it holds StreamIsActive open (``external-push``): each pushed ``true`` scales 0 -> 1 at
  once; a broken stream reconnects with KEDA's 2 s .. 60 s backoff;
* the replicas are real worker processes (:class:`~oasis_keda.runtime.workers.WorkerPool`);
  on a scale-down idle workers go first, as pod-deletion-cost makes a cluster do.

This module owns the set of models: adding, updating and removing their autoscalers as the
registry changes, and stopping every worker at shutdown. Desired and actual workers go to
Redis for ``oasis-keda status`` and every decision is kept as a
:class:`~oasis_keda.runtime.replicas.ScalingSample` for the demo's pictures
(:mod:`oasis_keda.runtime.replicas`); the timings are
:class:`~oasis_keda.runtime.autoscaler_settings.AutoscalerSettings`. The rules themselves
are described in docs/LOCAL_RUNTIME.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import grpc
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import ModelRecord, Registry
from oasis_keda.kubectl.names import resource_name
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.model_autoscaler import ModelAutoscaler
from oasis_keda.runtime.replicas import ScalingSample, read_runtime_replicas
from oasis_keda.runtime.workers import CommandFactory, WorkerPool
from scaler.proto import externalscaler_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

# Also the names the demo, the plots and ``oasis-keda status`` import from here, from
# before the settings and the published record had modules of their own.
__all__ = [
    "AutoscalerSettings",
    "LocalAutoscaler",
    "ModelAutoscaler",
    "ScalingSample",
    "read_runtime_replicas",
]


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
        await asyncio.to_thread(model.stop_workers, self.settings.grace_s)
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
                if records is not None:  # an unreadable registry changes nothing
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
        # Loops first, so that no scaling step starts a worker while the workers stop.
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.gather(
            *(
                asyncio.to_thread(m.stop_workers, self.settings.grace_s)
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
