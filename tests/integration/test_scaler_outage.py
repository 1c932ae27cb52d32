"""Redis going away under a running scaler, and coming back.

Covers: with Redis stopped every RPC answers UNAVAILABLE (never a made-up 0) within a 2 s
client deadline; the same with Redis frozen (SIGSTOP: connections open, no answers);
health NOT_SERVING while Redis is unreachable and SERVING again after; open streams end
with UNAVAILABLE; automatic recovery after a restart on the same port, including push
activation (the keyspace-notification setting is re-applied to the fresh server).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oasis_keda.runtime.embedded_redis import EmbeddedRedis
from scaler.proto import externalscaler_pb2 as pb
from tests.scaler_support import desired, ref, register, running_scaler, scaler_stub

DEADLINE_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


async def all_rpcs_unavailable(stub: object) -> None:
    calls = [
        lambda: stub.IsActive(ref("m"), timeout=DEADLINE_S),  # type: ignore[attr-defined]
        lambda: stub.GetMetricSpec(ref("m"), timeout=DEADLINE_S),  # type: ignore[attr-defined]
        lambda: stub.GetMetrics(  # type: ignore[attr-defined]
            pb.GetMetricsRequest(scaledObjectRef=ref("m")), timeout=DEADLINE_S
        ),
        lambda: stub.StreamIsActive(ref("m"), timeout=DEADLINE_S).read(),  # type: ignore[attr-defined]
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()


async def health_status(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_S
        )
    return int(response.status)


async def until_health(port: int, status: int) -> None:
    async with asyncio.timeout(10):
        while await health_status(port) != status:
            await asyncio.sleep(0.05)


async def test_redis_stopped_then_restarted(own_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(own_redis.url)
    try:
        queue = register(client, "m", scaling_strategy="QUEUE_LOAD")
        async with (
            running_scaler(own_redis.url, health_interval_s=0.05, recheck_interval_s=60)
            as server,
            scaler_stub(server.port) as stub,
        ):  # fmt: skip
            await until_health(server.port, SERVING)
            assert await desired(stub, "m") == 0
            stream = stub.StreamIsActive(ref("m"))
            assert (await stream.read()).result is False

            own_redis.stop()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stream.read()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            await all_rpcs_unavailable(stub)
            await until_health(server.port, NOT_SERVING)

            own_redis.start()  # same port, empty data
            client.close()
            register(client, "m", scaling_strategy="QUEUE_LOAD")
            await until_health(server.port, SERVING)
            assert await desired(stub, "m") == 0
            assert await server.hub.wait_connected(10)
            stream = stub.StreamIsActive(ref("m"))
            assert (await stream.read()).result is False
            client.lpush(queue, "job")
            async with asyncio.timeout(10):
                assert (await stream.read()).result is True
            stream.cancel()
    finally:
        client.close()


async def test_redis_frozen_answers_unavailable(own_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(own_redis.url)
    register(client, "m")
    client.close()
    async with running_scaler(own_redis.url) as server, scaler_stub(server.port) as stub:
        assert await desired(stub, "m") == 0
        pid = own_redis._proc.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            await all_rpcs_unavailable(stub)
        finally:
            os.kill(pid, signal.SIGCONT)
        async with asyncio.timeout(10):
            while True:
                try:
                    assert await desired(stub, "m") == 0
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)
