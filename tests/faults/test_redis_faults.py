"""Redis restarts mid-run, with and without persistence (real redis-server, controller and
worker processes, the trivial stage). Every analysis ends READY with every sub-task
COMPLETED; the time from the restart to READY is measured.

Covers: a restart without persistence (queue, chord state, leases and registry cache all
gone: the janitor rebuilds the registry and queues the lost sub-tasks again, recorded as
retries); a clean restart with persistence (nothing lost, nothing queued again); a SIGKILL
with persistence (at most the last second lost, healed the same way).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from oasis_keda.core.registry import Registry
from oasis_keda.runtime.embedded_redis import EmbeddedRedis
from tests.faults.conftest import record
from tests.stack_support import Stack, running_stack, wait_for

MODEL = "fault-model"
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def stack_on(tmp_path: Path) -> Iterator[Callable[[EmbeddedRedis], Stack]]:
    """Starts the processes of a test on the given server; all stopped at the end."""
    with contextlib.ExitStack() as stacks:
        yield lambda server: stacks.enter_context(running_stack(server.url, tmp_path))


def _run_with_restart(
    stack: Stack, server: EmbeddedRedis, tmp_path: Path, restart: str
) -> tuple[int, float]:
    Registry(stack.controller.client).register(MODEL)
    stack.start_controller()
    stack.start_worker(MODEL)
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,"
        "Longitude\n1,1,1,GB,WTC,GBP,52.1,-0.2\n"
    )
    analysis_id = stack.controller.create_analysis("a", model_id=MODEL, location_file=locations)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 4, "noop_sleep_s": 2})
    wait_for(
        lambda: any(
            s.slug == "noop-chunk-1" and s.status == "STARTED" for s in stack.subtasks(analysis_id)
        ),
        60,
        "the first chunk running",
    )
    time.sleep(1.2)  # past one fsync: what a persistent server must keep
    started = time.monotonic()
    if restart == "kill":
        server.kill()
    else:
        server.stop()
    server.start()
    status = stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}, 180)
    recovered_s = time.monotonic() - started
    assert status == "READY", stack.log("controller")[-3000:]
    subs = stack.subtasks(analysis_id)
    assert all(s.status == "COMPLETED" for s in subs), [(s.slug, s.status) for s in subs]
    return analysis_id, recovered_s


def test_restart_without_persistence(
    own_redis: EmbeddedRedis, stack_on: Callable[[EmbeddedRedis], Stack], tmp_path: Path
) -> None:
    stack = stack_on(own_redis)
    analysis_id, recovered_s = _run_with_restart(stack, own_redis, tmp_path, "stop")
    subs = stack.subtasks(analysis_id)
    retried = [s.slug for s in subs if s.retry_count]
    assert retried, "the lost sub-tasks must show their retry"
    assert any("the queue was lost" in (s.retry_log or "") for s in subs)
    client = redis.Redis.from_url(own_redis.url)
    assert Registry(client).get(MODEL).model_id == MODEL  # rebuilt from the records
    client.close()
    record("redis restart without persistence", recovered_s=round(recovered_s, 1), retried=retried)


@pytest.mark.parametrize("restart", ["stop", "kill"])
def test_restart_with_persistence(
    persistent_redis: EmbeddedRedis,
    stack_on: Callable[[EmbeddedRedis], Stack],
    tmp_path: Path,
    restart: str,
) -> None:
    stack = stack_on(persistent_redis)
    analysis_id, recovered_s = _run_with_restart(stack, persistent_redis, tmp_path, restart)
    subs = stack.subtasks(analysis_id)
    lost = [s.slug for s in subs if "the queue was lost" in (s.retry_log or "")]
    if restart == "stop":
        assert lost == []  # a clean restart loses nothing
    record(
        f"redis {'restart' if restart == 'stop' else 'SIGKILL'} with persistence",
        recovered_s=round(recovered_s, 1),
        queued_again=lost,
        retried=[s.slug for s in subs if s.retry_count],
    )
