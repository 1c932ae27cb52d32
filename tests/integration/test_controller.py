"""Task controller and workers with a trivial stage (real Redis, real controller and worker
processes started as ``oasis-keda ... serve``).

Covers: a dispatched stage's sub-task records match the plan (count, slugs, times ordered,
logs present, all COMPLETED, analysis READY, main task cleared); a failing chunk ends the
stage in *_ERROR with the message in the sub-task's error log and nothing after it reported
complete; cancel revokes queued and running sub-tasks and ends *_CANCELLED; a bad status is
refused before anything is queued; priorities reach the broker's priority lists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.main_tasks import parse_main_task_value
from oasis_keda.core.registry import Registry
from oasis_keda.testing.noop_stage import NOOP_SPEC
from task_controller.errors import StatusError
from tests.stack_support import Stack, running_stack, wait_for

MODEL = "noop-model"


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Stack:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL)
        yield stack  # type: ignore[misc]


def _analysis(stack: Stack, tmp_path: Path, priority: int = 4) -> int:
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
        "1,A1,1,GB,WTC,GBP,52.1,-0.2\n"
    )
    return stack.controller.create_analysis(
        "a", model_id=MODEL, location_file=locations, priority=priority
    )


def test_stage_records_match_the_plan(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    analysis_id = _analysis(stack, tmp_path)
    run_number = stack.controller.request(analysis_id, "noop", options={"noop_chunks": 6})
    assert stack.analysis(analysis_id).status == "INPUTS_GENERATION_QUEUED"
    mark = redis_client.hget(keys.main_tasks(MODEL), f"{analysis_id}:noop")
    assert mark is not None and parse_main_task_value(mark)[0] == 4
    stack.start_controller()
    stack.start_worker(MODEL)

    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    subs = stack.subtasks(analysis_id)
    assert [s.slug for s in subs] == NOOP_SPEC.slugs(6)
    assert [s.name for s in subs][1:3] == ["Noop chunk 1", "Noop chunk 2"]
    for sub in subs:
        assert sub.status == "COMPLETED", sub.slug
        assert sub.run_number == run_number
        assert sub.queue_name == keys.default_queue(MODEL)
        assert sub.task_id
        assert sub.queue_time is not None and sub.start_time is not None
        assert sub.end_time is not None
        assert sub.pending_time <= sub.queue_time <= sub.start_time <= sub.end_time
        assert sub.output_log and "started" in sub.output_log
        assert not sub.error_log
    # the chunks run after the first step and before the collect step
    assert subs[0].end_time <= min(s.start_time for s in subs[1:7])  # type: ignore[operator,type-var]
    assert max(s.end_time for s in subs[1:7]) <= subs[7].start_time  # type: ignore[operator,type-var]
    assert "6 chunks" in (subs[0].output_log or "")
    wait_for(
        lambda: not redis_client.hexists(keys.main_tasks(MODEL), f"{analysis_id}:noop"),
        10,
        "main task cleared",
    )

    queue = keys.default_queue(MODEL)
    wait_for(
        lambda: (
            redis_client.zcard(keys.leases_tasks(queue)) == 0
            and redis_client.zcard(keys.leases_busy(queue)) == 0
        ),
        10,
        "leases dropped once the sub-tasks are done",
    )

    # a second run keeps the first run's records readable
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 2})
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    assert len(stack.subtasks(analysis_id)) == len(NOOP_SPEC.slugs(2))
    assert len(stack.subtasks(analysis_id, run_number)) == len(NOOP_SPEC.slugs(6))


def test_failing_chunk_ends_in_error_with_its_message(stack: Stack, tmp_path: Path) -> None:
    stack.start_controller()
    stack.start_worker(MODEL)
    analysis_id = _analysis(stack, tmp_path)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 3, "noop_fail_chunk": 2})
    status = stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"})
    assert status == "INPUTS_GENERATION_ERROR"
    subs = {s.slug: s for s in stack.subtasks(analysis_id)}
    failed = subs["noop-chunk-2"]
    assert failed.status == "ERROR"
    assert "noop chunk 2 was told to fail" in (failed.error_log or "")
    assert failed.retry_count == 0  # deterministic: no retry
    for slug in ("noop-collect", "noop-cleanup"):
        assert subs[slug].status in {"CANCELLED", "PENDING"}, slug
    analysis = stack.analysis(analysis_id)
    assert analysis.input_generation_traceback_file_id is not None
    assert analysis.status == "INPUTS_GENERATION_ERROR"


def test_cancel_revokes_queued_and_running(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    stack.start_worker(MODEL)
    analysis_id = _analysis(stack, tmp_path)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 4, "noop_sleep_s": 3})
    wait_for(
        lambda: any(
            s.status == "STARTED" and s.slug.startswith("noop-chunk")
            for s in stack.subtasks(analysis_id)
        ),
        30,
        "a chunk running",
    )
    stack.controller.cancel(analysis_id)
    assert stack.analysis(analysis_id).status == "INPUTS_GENERATION_CANCELLED"
    assert not redis_client.hexists(keys.main_tasks(MODEL), f"{analysis_id}:noop")
    subs = stack.subtasks(analysis_id)
    assert all(s.status in {"COMPLETED", "CANCELLED"} for s in subs), [s.status for s in subs]
    assert subs[-1].status == "CANCELLED"
    # the queue drains without running the rest: nothing turns COMPLETED afterwards
    wait_for(
        lambda: all(redis_client.llen(q) == 0 for q in keys.queue_lists(keys.default_queue(MODEL))),
        30,
        "queue drained",
    )
    completed = [s.slug for s in stack.subtasks(analysis_id) if s.status == "COMPLETED"]
    assert "noop-collect" not in completed
    assert stack.analysis(analysis_id).status == "INPUTS_GENERATION_CANCELLED"


def test_bad_status_is_refused_before_anything_is_queued(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    analysis_id = _analysis(stack, tmp_path)
    with pytest.raises(StatusError, match="Analysis status must be one of"):
        stack.controller.run(analysis_id)  # NEW: no inputs yet
    analysis = stack.analysis(analysis_id)
    assert analysis.status == "NEW"
    assert analysis.run_number == 0
    assert redis_client.llen(keys.CONTROLLER_QUEUE) == 0
    assert not redis_client.exists(keys.main_tasks(MODEL))


def test_priority_reaches_the_broker(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # No controller running: the main tasks wait in the controller queue's priority lists.
    low = _analysis(stack, tmp_path, priority=1)
    high = _analysis(stack, tmp_path, priority=10)
    stack.controller.request(low, "noop")
    stack.controller.request(high, "noop")
    lists = keys.queue_lists(keys.CONTROLLER_QUEUE)
    assert redis_client.llen(lists[0]) == 1  # priority 10 -> kombu 0 (served first)
    assert redis_client.llen(lists[-1]) == 1  # priority 1 -> kombu 9
    mark = redis_client.hget(keys.main_tasks(MODEL), f"{high}:noop")
    assert mark is not None and parse_main_task_value(mark)[0] == 10


def test_prefork_worker_runs_chunks_side_by_side(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    stack.start_worker(MODEL, concurrency=2)
    analysis_id = _analysis(stack, tmp_path)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 2, "noop_sleep_s": 2})
    queue = keys.default_queue(MODEL)
    wait_for(lambda: redis_client.zcard(keys.leases_tasks(queue)) == 2, 30, "two task leases")
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    chunks = [s for s in stack.subtasks(analysis_id) if s.slug.startswith("noop-chunk")]
    assert chunks[0].start_time < chunks[1].end_time  # type: ignore[operator]
    assert chunks[1].start_time < chunks[0].end_time  # type: ignore[operator]
    wait_for(lambda: redis_client.zcard(keys.leases_tasks(queue)) == 0, 10, "leases dropped")


def test_transient_errors_are_retried_a_bounded_number_of_times(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start_controller()
    stack.start_worker(MODEL)
    ok = _analysis(stack, tmp_path)
    stack.controller.request(ok, "noop", options={"noop_chunks": 2, "noop_transient_failures": 2})
    assert stack.wait_status(ok, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    chunk = next(s for s in stack.subtasks(ok) if s.slug == "noop-chunk-1")
    assert chunk.status == "COMPLETED"
    assert chunk.retry_count == 2
    assert "attempt 2 failed on purpose" in (chunk.retry_log or "")

    doomed = _analysis(stack, tmp_path)
    stack.controller.request(
        doomed, "noop", options={"noop_chunks": 2, "noop_transient_failures": 10}
    )
    status = stack.wait_status(doomed, {"READY", "INPUTS_GENERATION_ERROR"}, timeout_s=60)
    assert status == "INPUTS_GENERATION_ERROR"
    chunk = next(s for s in stack.subtasks(doomed) if s.slug == "noop-chunk-1")
    assert chunk.status == "ERROR"
    assert chunk.retry_count == 3
    assert "attempt 4 failed on purpose" in (chunk.error_log or "")


def test_dispatch_is_idempotent_and_resumes_after_a_crash(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    from task_controller import records
    from task_controller.canvas import plan_subtasks

    # A repeated delivery of the main task sends nothing twice.
    first = _analysis(stack, tmp_path)
    run = stack.controller.request(first, "noop", options={"noop_chunks": 2})
    assert stack.dispatcher().dispatch(first, run, "noop", {"noop_chunks": 2}) == 5
    assert stack.dispatcher().dispatch(first, run, "noop", {"noop_chunks": 2}) == 0

    # A controller died after writing the rows, before sending: the redelivery sends them.
    second = _analysis(stack, tmp_path)
    run = stack.controller.request(second, "noop", options={"noop_chunks": 3})
    with stack.controller.sessions.begin() as session:
        analysis = records.get_analysis(session, second)
        rows = records.create_subtasks(
            session,
            analysis,
            stage="noop",
            queue=keys.default_queue(MODEL),
            planned=plan_subtasks(NOOP_SPEC, 3),
        )
        ids = [r.id for r in rows]
    assert stack.dispatcher().dispatch(second, run, "noop", {"noop_chunks": 3}) == 6
    stack.start_worker(MODEL)
    for analysis_id in (first, second):
        assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    assert [s.id for s in stack.subtasks(second)] == ids
    assert all(s.status == "COMPLETED" for s in stack.subtasks(second))


def test_planned_work_is_recorded_counted_down_and_reconciled(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    """The stage's sub-task count is in Redis before any sub-task is published, each
    completed sub-task takes one off, the stage's end clears it; the janitor's reconcile
    sets a wrong count right and removes what no analysis in progress explains."""
    from oasis_keda.core.registry import Registry as _Registry
    from task_controller import records

    analysis_id = _analysis(stack, tmp_path)
    run_number = stack.controller.request(analysis_id, "noop", options={"noop_chunks": 6})
    planned = keys.planned(MODEL)
    stack.dispatcher().dispatch(analysis_id, run_number, "noop", {"noop_chunks": 6})
    total = len(NOOP_SPEC.slugs(6))
    assert redis_client.hget(planned, f"{analysis_id}:noop") == str(total).encode()
    # the janitor's view: a wrong count is set right, a stale field is removed
    redis_client.hset(planned, f"{analysis_id}:noop", "99")
    redis_client.hset(planned, "424242:losses", "7")
    with stack.controller.sessions.begin() as session:
        ids = [m.model_id for m in _Registry(redis_client).list()]
        assert records.reconcile_planned(session, redis_client, ids) == 2
    assert redis_client.hgetall(planned) == {f"{analysis_id}:noop".encode(): str(total).encode()}

    seen: list[int] = []

    def done() -> bool:
        raw = redis_client.hget(planned, f"{analysis_id}:noop")
        if raw is not None:
            seen.append(int(raw))
        return stack.analysis(analysis_id).status == "READY"

    stack.start_worker(MODEL)
    wait_for(done, 60, "the stage to finish")
    assert seen == sorted(seen, reverse=True)  # only ever counted down
    assert not redis_client.exists(planned)  # the stage's end cleared it
