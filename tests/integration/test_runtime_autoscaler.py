"""The local autoscaler against the real scaler over gRPC (real Redis, real processes).

Covers: push activation (StreamIsActive scales 0 -> 1 with the polling interval far away),
the HPA following the scaler's metric up to maxReplicaCount, cooldown back to 0 once the
queue is empty, holding the replicas while the scaler is unreachable (never a made-up 0),
and idle-before-busy selection on scale-down. The replicas here are stand-in processes
(``sleep``) so that the queue only changes when the test says so; real workers are
covered by test_runtime_up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.runtime.autoscaler import LocalAutoscaler
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.model_autoscaler import ModelAutoscaler
from oasis_keda.runtime.replicas import read_runtime_replicas
from oasis_keda.runtime.workers import WorkerProcess, is_busy, node_pid, pick_victims
from scaler.server import ScalerServer
from scaler.settings import ScalerSettings

MODEL = "auto-model"
pytestmark = pytest.mark.timeout(120)


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def make_autoscaler(
    client: redis.Redis, address: str, tmp_path: Path, **timings: int
) -> LocalAutoscaler:
    settings = AutoscalerSettings(
        cooldown_period_s=1, scale_down_stabilization_s=0, grace_s=5, **timings
    )
    return LocalAutoscaler(
        settings=settings,
        client=client,
        scaler_address=address,
        command=lambda model_id, name: ["sleep", "600"],
        env={},
        log_dir=tmp_path / "workers",
    )


async def test_push_activation_metric_cooldown_and_outage(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    registry = Registry(client)
    record = registry.register(MODEL)
    registry.set_scaling(
        MODEL, {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "worker_count_max": 3}
    )
    server = ScalerServer(ScalerSettings(redis_url=redis_url, host="127.0.0.1", port=0))
    port = await server.start()
    # a long polling interval: only a push can activate within the test's patience
    autoscaler = make_autoscaler(client, f"127.0.0.1:{port}", tmp_path, polling_interval_s=30)
    running = asyncio.create_task(autoscaler.run())
    server_stopped = False
    try:
        await wait_for(lambda: MODEL in autoscaler.models, "the model's loop")
        model: ModelAutoscaler = autoscaler.models[MODEL]
        await wait_for(lambda: bool(autoscaler.samples), "the first poll")
        assert model.state.replicas == 0

        client.rpush(record.queue, *[json.dumps({"n": i}) for i in range(6)])
        await wait_for(lambda: model.state.replicas == 1, "push activation 0 -> 1", 10)
        assert any(s.reason.startswith("Push/Activated") for s in autoscaler.samples)
        assert len(model.pool.running) == 1

        # the next poll: metric ceil(6 / 2) = 3 -> the HPA takes it to 3 (the max)
        await model.poll_once()
        assert model.state.replicas == 3
        assert len(model.pool.running) == 3

        # the scaler goes away: errors, no fallback yet -> the replicas are held
        await server.stop(grace_s=0)
        server_stopped = True
        for _ in range(2):
            decision = await model.poll_once()
            assert decision.replicas == 3
        assert model.state.failures == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if not server_stopped:
            await server.stop(grace_s=0)
    assert autoscaler.live_workers() == 0  # shutdown took every replica down
    client.close()


async def test_empty_queue_cools_down_to_zero(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    registry = Registry(client)
    record = registry.register(MODEL)
    registry.set_scaling(
        MODEL, {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "worker_count_max": 3}
    )
    server = ScalerServer(ScalerSettings(redis_url=redis_url, host="127.0.0.1", port=0))
    port = await server.start()
    autoscaler = make_autoscaler(client, f"127.0.0.1:{port}", tmp_path, polling_interval_s=1)
    running = asyncio.create_task(autoscaler.run())
    try:
        await wait_for(lambda: MODEL in autoscaler.models, "the model's loop")
        model = autoscaler.models[MODEL]
        client.rpush(record.queue, *[json.dumps({"n": i}) for i in range(4)])
        await wait_for(lambda: model.state.replicas == 2, "scale-up to 2")
        pids = [w.pid for w in model.pool.running]
        client.delete(*keys.queue_lists(record.queue))
        await wait_for(lambda: model.state.replicas == 0, "cooldown to 0", 30)
        await wait_for(lambda: not model.pool.live, "the replicas to exit", 10)

        def published() -> tuple[int, int]:
            stored = json.loads(client.hget(keys.RUNTIME_REPLICAS, MODEL) or b"{}")
            return stored.get("desired"), stored.get("actual")

        # status reads desired and actual from Redis; actual drops once the SIGTERMed exit
        await wait_for(lambda: published() == (0, 0), "published desired/actual 0/0", 10)
        assert read_runtime_replicas(client)[MODEL]["desired"] == 0
        assert pids
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await server.stop(grace_s=0)
        client.close()


class _Proc:
    def __init__(self, pid: int) -> None:
        self.pid = pid


def _worker(name: str, pid: int, started: float) -> WorkerProcess:
    return WorkerProcess(name=name, proc=_Proc(pid), started_at=started)  # type: ignore[arg-type]


def test_idle_workers_are_stopped_before_busy_ones() -> None:
    workers = [_worker("a", 101, 1.0), _worker("b", 102, 2.0), _worker("c", 103, 3.0)]
    busy = {"model.103@host", "model.101@host"}
    assert node_pid("model.103@host") == 103
    assert is_busy(workers[2], busy) and not is_busy(workers[1], busy)
    assert [w.name for w in pick_victims(workers, 1, busy)] == ["b"]
    # among busy ones, the newest goes first
    assert [w.name for w in pick_victims(workers, 2, busy)] == ["b", "c"]
    assert [w.name for w in pick_victims(workers, 1, set())] == ["c"]
