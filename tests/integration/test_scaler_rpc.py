"""The scaler's RPCs over a real gRPC socket against a real Redis.

Covers: GetMetricSpec (one stable metric, target 1 in both fields); GetMetrics and IsActive
from waiting messages sent by Celery's own ``send_task`` with priorities (every priority
list counted), from task and busy leases, from main tasks; the busy floor; the global
budget by priority over RPC; the budget as a ceiling on live workers (draining workers,
a scaler restart, the start allowance); INVALID_ARGUMENT and NOT_FOUND with messages; StreamMetricSpec
UNIMPLEMENTED; grpc.health.v1 SERVING after the first Redis read; configuration changes
taking effect on the next call; one EVALSHA per GetMetrics.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oasis_keda.core import keys
from oasis_keda.core.leases import LeaseKeeper
from oasis_keda.core.registry import Registry
from scaler.proto import externalscaler_pb2 as pb
from tests.scaler_support import (
    celery_producer,
    desired,
    metrics_request,
    ref,
    register,
    running_scaler,
    scaler_stub,
)


async def test_metric_spec_is_one_stable_metric_with_target_one(
    redis_url: str, redis_client: redis.Redis
) -> None:
    register(redis_client, "piwind")
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        first = await stub.GetMetricSpec(ref("piwind"))
        second = await stub.GetMetricSpec(ref("piwind"))
    assert len(first.metricSpecs) == 1
    spec = first.metricSpecs[0]
    assert (spec.targetSize, spec.targetSizeFloat) == (1, 1.0)
    assert spec.metricName == second.metricSpecs[0].metricName != ""


async def test_celery_tasks_with_priorities_are_counted(
    redis_url: str, redis_client: redis.Redis
) -> None:
    queue = register(redis_client, "m-1", scaling_strategy="DYNAMIC_TASKS", chunks_per_worker=5)
    with celery_producer(redis_url) as send:
        for priority in (None, 0, 3, 5, 9, 9, 7):
            send(queue, priority=priority)
    lists_used = [k for k in keys.queue_lists(queue) if redis_client.llen(k) > 0]
    assert len(lists_used) > 1  # the priorities really went to separate lists
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        assert await desired(stub, "m-1") == 2  # ceil(7 / 5)
        assert (await stub.IsActive(ref("m-1"))).result is True
        Registry(redis_client).set_scaling("m-1", {"chunks_per_worker": 1, "worker_count_max": 4})
        assert await desired(stub, "m-1") == 4  # new configuration on the next call


async def test_idle_model_is_inactive_with_zero(redis_url: str, redis_client: redis.Redis) -> None:
    register(redis_client, "idle", scaling_strategy="QUEUE_LOAD")
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        assert await desired(stub, "idle") == 0
        assert (await stub.IsActive(ref("idle"))).result is False


async def test_leases_and_main_tasks_count(redis_url: str, redis_client: redis.Redis) -> None:
    queue = register(redis_client, "m", scaling_strategy="DYNAMIC_TASKS", chunks_per_worker=2)
    worker_a = LeaseKeeper(redis_client, queue=queue, node="a", ttl_s=30)
    worker_b = LeaseKeeper(redis_client, queue=queue, node="b", ttl_s=30)
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        for i in range(5):
            worker_a.task_reserved(f"t{i}")
        assert await desired(stub, "m") == 3  # ceil(5 reserved / 2)
        worker_b.task_started("u1")
        worker_b.task_started("u2")
        worker_a.task_started("t0")
        Registry(redis_client).set_scaling("m", {"chunks_per_worker": 100})
        assert await desired(stub, "m") == 2  # busy floor: a and b run tasks
        for i in range(5):
            worker_a.task_done(f"t{i}")
        worker_b.task_done("u1")
        worker_b.task_done("u2")
        assert await desired(stub, "m") == 0
        redis_client.hset(keys.main_tasks("m"), "analysis-1:losses", "5")
        assert await desired(stub, "m") == 1  # a main task in progress needs a worker
        Registry(redis_client).set_scaling("m", {"scaling_strategy": "QUEUE_LOAD"})
        redis_client.hset(keys.main_tasks("m"), "analysis-2:inputs", "5")
        assert await desired(stub, "m") == 2


async def test_planned_work_counts_with_count_planned(
    redis_url: str, redis_client: redis.Redis
) -> None:
    register(redis_client, "p", scaling_strategy="DYNAMIC_TASKS", chunks_per_worker=3)
    redis_client.hset(keys.main_tasks("p"), "1:inputs", "5:1000")
    redis_client.hset(keys.planned("p"), mapping={"1:inputs": "6", "1:losses": "6"})
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        assert await desired(stub, "p") == 1  # off by default: the queue is empty
        Registry(redis_client).set_scaling("p", {"count_planned": True})
        assert await desired(stub, "p") == 4  # ceil(12 planned / 3)
        redis_client.hset(keys.planned("p"), "1:inputs", "0")
        assert await desired(stub, "p") == 2  # the loss stage a generate-and-run will plan


async def test_global_budget_goes_to_priority(redis_url: str, redis_client: redis.Redis) -> None:
    for model_id in ("hi", "lo"):
        register(redis_client, model_id, scaling_strategy="QUEUE_LOAD")
        for n in range(4):
            redis_client.hset(keys.main_tasks(model_id), f"a{n}:losses", "9" if model_id == "hi"
                              else "2")  # fmt: skip
    Registry(redis_client).set_global_worker_limit(5)
    fresh = {"snapshot_max_age_s": 0.0}  # every call reads: no snapshot to wait out
    async with running_scaler(redis_url, **fresh) as server, scaler_stub(server.port) as stub:
        assert await desired(stub, "hi") == 4
        assert await desired(stub, "lo") == 1
        Registry(redis_client).set_global_worker_limit(None)
        assert await desired(stub, "lo") == 4


async def test_global_limit_is_a_ceiling_on_live_workers(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Grants grow only from free capacity; draining workers keep theirs; grants survive a
    scaler restart; a raise whose workers never start holds capacity for the allowance."""
    qa = register(redis_client, "a", scaling_strategy="QUEUE_LOAD")
    register(redis_client, "b", scaling_strategy="QUEUE_LOAD")
    for n in range(3):
        redis_client.hset(keys.main_tasks("a"), f"{n}:losses", f"5:{1000 + n}")
    Registry(redis_client).set_global_worker_limit(3)
    fields = {"snapshot_max_age_s": 0.0, "start_allowance_s": 2.0}
    workers = [LeaseKeeper(redis_client, queue=qa, node=f"a{i}", ttl_s=30) for i in range(3)]
    try:
        async with running_scaler(redis_url, **fields) as server, scaler_stub(server.port) as stub:
            assert await desired(stub, "a") == 3
            for w in workers:
                w.refresh()  # a's three workers are live
            redis_client.hset(keys.main_tasks("b"), "9:losses", "5:5000")
            # b's share is 1, but a's three live workers hold the whole limit: b waits.
            assert await desired(stub, "a") == 2
            assert await desired(stub, "b") == 0
        async with running_scaler(redis_url, **fields) as server, scaler_stub(server.port) as stub:
            assert await desired(stub, "b") == 0  # a restarted scaler keeps the grants
            workers[2].stop()  # a's third worker drained and exited
            assert await desired(stub, "b") == 1
            assert await desired(stub, "a") == 2
            # b's raise holds its capacity while b's worker starts: a cannot take it back.
            redis_client.hdel(keys.main_tasks("b"), "9:losses")
            assert await desired(stub, "b") == 0
            assert await desired(stub, "a") == 2  # a's share is 3 again, b's raise pending
            await asyncio.sleep(2.2)  # the start allowance is over: b's worker never came
            assert await desired(stub, "a") == 3
    finally:
        for w in workers:
            w.stop()
        Registry(redis_client).set_global_worker_limit(None)
    assert not redis_client.exists(keys.BUDGET_GRANTS)  # the grants go with the limit


async def test_bad_metadata_and_unknown_model(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.set(keys.REGISTRY_LOADED, "1")  # a whole registry: unknown is unregistered
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        calls = [
            lambda r: stub.IsActive(r),
            lambda r: stub.GetMetricSpec(r),
            lambda r: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r)),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(ref(None))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "model" in (info.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(ref("no-such-model"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert "no-such-model" in (info.value.details() or "")
        stream = stub.StreamIsActive(ref("no-such-model"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stream.read()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stream_metric_spec_unimplemented(redis_url: str, redis_client: redis.Redis) -> None:
    register(redis_client, "m")
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.StreamMetricSpec(ref("m")).read()
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_serving_after_first_redis_read(redis_url: str) -> None:
    async with (
        running_scaler(redis_url, health_interval_s=0.05) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="externalscaler.ExternalScaler")
        watch = health.Watch(request)
        statuses = []
        async for response in watch:
            statuses.append(response.status)
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                break
        watch.cancel()
    assert statuses[-1] == health_pb2.HealthCheckResponse.SERVING


async def test_one_redis_round_trip_per_call(redis_url: str, redis_client: redis.Redis) -> None:
    register(redis_client, "m", scaling_strategy="DYNAMIC_TASKS")
    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        await desired(stub, "m")  # loads the script
        redis_client.config_resetstat()
        for _ in range(20):
            await stub.GetMetrics(metrics_request("m"))
    stats = redis_client.info("commandstats")
    scaler_calls = sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_eval"))
    assert scaler_calls == 20
