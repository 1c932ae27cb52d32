"""StreamIsActive: push activation over a real gRPC stream.

Covers: the current value is sent at open; ``true`` is pushed after an LPUSH to the
model's queue driven by a keyspace notification (the safety re-check is set to a minute,
so nothing else could deliver it in time); unchanged values are never repeated; a cancelled
stream is cleaned up; 200+ concurrent streams share one pub/sub connection and all get the
push; with CONFIG refused the scaler logs a WARNING and falls back to polling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.runtime.embedded_redis import EmbeddedRedis
from scaler.proto import externalscaler_pb2_grpc as pb_grpc
from scaler.state import CLIENT_NAME
from tests.scaler_support import ref, register, running_scaler, scaler_stub

NO_POLL = {"recheck_interval_s": 60.0, "poll_interval_s": 60.0}
WAIT_S = 5.0  # generous: the bench measures the real latency (p99 <= 100 ms)


class Reader:
    """Reads a stream without ever cancelling a read (that would cancel the whole RPC)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._pending: asyncio.Task[Any] | None = None

    def _task(self) -> asyncio.Task[Any]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.stream.read())
        return self._pending

    async def next(self, timeout_s: float = WAIT_S) -> bool:
        task = self._task()
        await asyncio.wait({task}, timeout=timeout_s)
        assert task.done(), "no message in time"
        self._pending = None
        response = task.result()
        assert response is not grpc.aio.EOF
        return bool(response.result)

    async def nothing_more(self, quiet_s: float = 0.3) -> bool:
        task = self._task()
        await asyncio.wait({task}, timeout=quiet_s)
        return not task.done()

    def cancel(self) -> None:
        self.stream.cancel()


async def read(stream: Any, timeout_s: float = WAIT_S) -> bool:
    return await Reader(stream).next(timeout_s)


async def open_stream(stub: pb_grpc.ExternalScalerStub, model_id: str) -> Any:
    return stub.StreamIsActive(ref(model_id))


async def test_current_value_at_open_then_only_changes(
    redis_url: str, redis_client: redis.Redis
) -> None:
    queue = register(redis_client, "m", scaling_strategy="DYNAMIC_TASKS")
    async with running_scaler(redis_url, **NO_POLL) as server, scaler_stub(server.port) as stub:
        assert await server.hub.wait_connected(WAIT_S)
        stream = Reader(await open_stream(stub, "m"))
        assert await stream.next() is False
        redis_client.lpush(queue, "job-1")
        assert await stream.next() is True
        redis_client.lpush(queue, "job-2")  # still active: nothing is sent
        assert await stream.nothing_more()
        redis_client.delete(queue)
        assert await stream.next() is False
        stream.cancel()


async def test_priority_list_and_main_task_activate(
    redis_url: str, redis_client: redis.Redis
) -> None:
    queue = register(redis_client, "m", scaling_strategy="QUEUE_LOAD")
    async with running_scaler(redis_url, **NO_POLL) as server, scaler_stub(server.port) as stub:
        assert await server.hub.wait_connected(WAIT_S)
        stream = await open_stream(stub, "m")
        assert await read(stream) is False
        redis_client.lpush(keys.queue_lists(queue)[2], "job")  # priority list 6
        assert await read(stream) is True
        redis_client.delete(keys.queue_lists(queue)[2])
        assert await read(stream) is False
        redis_client.hset(keys.main_tasks("m"), "a1:inputs", "4")
        assert await read(stream) is True
        stream.cancel()


async def test_cancelled_stream_is_cleaned_up(redis_url: str, redis_client: redis.Redis) -> None:
    register(redis_client, "m")
    async with running_scaler(redis_url, **NO_POLL) as server, scaler_stub(server.port) as stub:
        stream = await open_stream(stub, "m")
        assert await read(stream) is False
        assert server.hub.stream_count == 1
        stream.cancel()
        async with asyncio.timeout(WAIT_S):
            while server.hub.stream_count:
                await asyncio.sleep(0.01)


async def test_hundreds_of_streams_share_one_connection(
    redis_url: str, redis_client: redis.Redis
) -> None:
    queues = {f"model-{i}": register(redis_client, f"model-{i}") for i in range(4)}
    async with running_scaler(redis_url, **NO_POLL) as server, scaler_stub(server.port) as stub:
        assert await server.hub.wait_connected(WAIT_S)
        streams = [await open_stream(stub, f"model-{i % 4}") for i in range(220)]
        assert await asyncio.gather(*(read(s) for s in streams)) == [False] * 220
        clients = [c for c in redis_client.client_list() if c.get("name") == CLIENT_NAME]
        subscribers = [c for c in clients if int(c.get("psub", 0)) or int(c.get("sub", 0))]
        assert len(subscribers) == 1
        assert len(clients) < 20  # no connection per stream
        for queue in queues.values():
            redis_client.lpush(queue, "job")
        assert await asyncio.gather(*(read(s) for s in streams)) == [True] * 220
        for stream in streams:
            stream.cancel()


async def test_poll_fallback_when_config_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="scaler.activity")
    with EmbeddedRedis(extra_args=["--rename-command", "CONFIG", ""]) as server_redis:
        client = redis.Redis.from_url(server_redis.url)
        try:
            queue = register(client, "m")
            async with (
                running_scaler(server_redis.url, poll_interval_s=0.1, recheck_interval_s=60)
                as server,
                scaler_stub(server.port) as stub,
            ):  # fmt: skip
                assert await server.hub.wait_connected(WAIT_S)
                assert server.hub.notifications is False
                stream = await open_stream(stub, "m")
                assert await read(stream) is False
                client.lpush(queue, "job")
                assert await read(stream) is True
                stream.cancel()
        finally:
            client.close()
    assert any("falls back" in r.getMessage() for r in caplog.records)
