"""Helpers for the scaler's integration tests: a real server on a free port, stubs, models."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oasis_keda.core.registry import Registry
from scaler.proto import externalscaler_pb2 as pb
from scaler.proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import ScalerServer
from scaler.settings import ScalerSettings


@contextlib.asynccontextmanager
async def running_scaler(redis_url: str, **fields: Any) -> AsyncIterator[ScalerServer]:
    """A scaler on 127.0.0.1 and a free port, stopped (grace 0) at the end."""
    settings = ScalerSettings(redis_url=redis_url, host="127.0.0.1", port=0, **fields)
    server = ScalerServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace_s=0)


@contextlib.asynccontextmanager
async def scaler_stub(
    port: int, credentials: grpc.ChannelCredentials | None = None, **options: Any
) -> AsyncIterator[pb_grpc.ExternalScalerStub]:
    target = f"127.0.0.1:{port}" if credentials is None else f"localhost:{port}"
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials, options=list(options.items()))
    )
    async with channel:
        yield pb_grpc.ExternalScalerStub(channel)


def ref(model_id: str | None) -> pb.ScaledObjectRef:
    metadata = {} if model_id is None else {"model": model_id}
    return pb.ScaledObjectRef(name="workers", namespace="oasis", scalerMetadata=metadata)


def metrics_request(model_id: str | None) -> pb.GetMetricsRequest:
    return pb.GetMetricsRequest(scaledObjectRef=ref(model_id), metricName="s0-oasis")


async def desired(stub: pb_grpc.ExternalScalerStub, model_id: str) -> int:
    response = await stub.GetMetrics(metrics_request(model_id))
    value = response.metricValues[0]
    assert value.metricValueFloat == float(value.metricValue)
    return int(value.metricValue)


def register(client: redis.Redis, model_id: str, **scaling: Any) -> str:
    """Register a model with a scaling configuration; returns its queue."""
    registry = Registry(client)
    record = registry.register(model_id)
    if scaling:
        registry.set_scaling(model_id, scaling)
    return record.queue


@contextlib.contextmanager
def celery_producer(redis_url: str) -> Iterator[Any]:
    """A Celery app on the test broker: yields ``send(queue, priority=None)``."""
    from celery import Celery

    app = Celery("oasis-keda-tests", broker=redis_url, set_as_current=False)
    try:
        with app.producer_or_acquire() as producer:

            def send(queue: str, priority: int | None = None) -> None:
                app.send_task(
                    "oasis_keda.tests.noop", args=(1,), queue=queue, priority=priority,
                    producer=producer,
                )  # fmt: skip

            yield send
    finally:
        app.pool.force_close_all()
        app.close()


async def wait_serving(port: int, timeout_s: float = 30.0) -> None:
    """Wait until the scaler on ``port`` reports SERVING on grpc.health.v1."""
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("scaler did not become SERVING")
