"""Workers under faults, on a trivial stage (real Redis, real controller and worker processes).

Covers: while a sub-task runs its worker holds a task lease and a busy lease for the scaler;
SIGTERM mid-chunk is a warm shutdown (the chunk finishes, no new one is taken, a new worker
takes the rest); a worker SIGKILLed mid-chunk stops counting within one lease TTL and its
chunk is restored by the janitor long before kombu's visibility timeout, so the analysis
completes with every sub-task recorded once, COMPLETED, the re-run chunk's record showing
the retry (retry_count 1, the lost attempt in its retry log).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from tests.stack_support import LEASE_TTL_S, Stack, running_stack, wait_for

MODEL = "noop-model"
QUEUE = keys.default_queue(MODEL)


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL)
        yield stack


def _request(stack: Stack, tmp_path: Path, **options: object) -> int:
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency\n"
        "1,A1,1,GB,WTC,GBP\n"
    )
    analysis_id = stack.controller.create_analysis("a", model_id=MODEL, location_file=locations)
    stack.controller.request(analysis_id, "noop", options=dict(options))
    return analysis_id


def _running_chunk(stack: Stack, analysis_id: int) -> str:
    found: list[str] = []

    def running() -> bool:
        for sub in stack.subtasks(analysis_id):
            if sub.slug.startswith("noop-chunk") and sub.status == "STARTED":
                found.append(sub.slug)
                return True
        return False

    wait_for(running, 30, "a chunk running")
    return found[0]


def _live_leases(client: redis.Redis) -> list[bytes]:
    now_ms = int(time.time() * 1000)
    return list(client.zrangebyscore(keys.leases_tasks(QUEUE), now_ms, "+inf"))


def test_sigterm_finishes_the_running_chunk_and_takes_no_new_one(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    worker = stack.start_worker(MODEL)
    analysis_id = _request(stack, tmp_path, noop_chunks=3, noop_sleep_s=2)
    slug = _running_chunk(stack, analysis_id)
    assert _live_leases(redis_client), "a running sub-task holds a task lease"
    assert redis_client.zcard(keys.leases_busy(QUEUE)) == 1

    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    subs = {s.slug: s for s in stack.subtasks(analysis_id)}
    assert subs[slug].status == "COMPLETED"  # finished before the worker exited
    started = [s for s in subs.values() if s.status == "STARTED"]
    assert not started
    assert [s for s in subs.values() if s.status == "QUEUED"], "the other chunks wait"
    assert "Warm shutdown" in stack.log("worker")
    assert not _live_leases(redis_client)  # a clean exit drops its leases at once

    stack.start_worker(MODEL, name="worker2")
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"


def test_sigkilled_worker_chunk_is_restored_and_the_stage_completes(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    worker = stack.start_worker(MODEL)
    analysis_id = _request(stack, tmp_path, noop_chunks=3, noop_sleep_s=2)
    slug = _running_chunk(stack, analysis_id)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    # the dead worker's message is still unacked: only our janitor brings it back quickly
    assert redis_client.hlen("unacked") >= 1
    wait_for(lambda: not _live_leases(redis_client), LEASE_TTL_S + 3, "the lease to expire")

    worker2 = stack.start_worker(MODEL, name="worker2")
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    subs = stack.subtasks(analysis_id)
    assert all(s.status == "COMPLETED" for s in subs)
    assert len({s.slug for s in subs}) == len(subs)
    assert "restored task" in stack.log("controller")
    rerun = next(s for s in subs if s.slug == slug)
    assert f".{worker2.pid}@" in (rerun.worker or "")  # the killed chunk ran again on worker2
    assert "sleeping" in (rerun.output_log or "")
    # the record shows the retry: a new attempt, the lost one named in the retry log
    assert rerun.retry_count == 1
    assert "was lost with its worker; run again on" in (rerun.retry_log or "")
    assert f".{worker.pid}@" in (rerun.retry_log or "")
    assert all(s.retry_count == 0 for s in subs if s.slug != slug)
    wait_for(lambda: redis_client.hlen("unacked") == 0, 10, "every message acked")


def test_killed_controller_main_task_is_restored(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    controller = stack.start_controller()
    stack.wait_log("controller", "ready.")
    stack.start_worker(MODEL)
    analysis_id = _request(stack, tmp_path, noop_chunks=2, dispatch_pause_s=3)
    wait_for(
        lambda: redis_client.zcard(keys.leases_tasks(keys.CONTROLLER_QUEUE)) == 1,
        30,
        "the controller holding the main task",
    )
    os.killpg(controller.pid, signal.SIGKILL)
    controller.wait(timeout=10)
    assert stack.analysis(analysis_id).status == "INPUTS_GENERATION_QUEUED"
    stack.start(
        "controller",
        "serve",
        "--janitor-grace-s",
        "2",
        "--janitor-interval-s",
        "0.5",
        "--lease-ttl-s",
        str(LEASE_TTL_S),
        name="controller2",
    )
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    assert "restored task" in stack.log("controller2")
