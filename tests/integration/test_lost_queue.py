"""A lost queue is noticed and healed by the controller's janitor (real Redis, real
controller and worker processes, the test hooks' trivial stage).

Covers: a first step lost from the broker is queued again and the stage completes, its
record showing the new attempt; the whole Redis database wiped while a chunk runs (queued
chunks, chord state, leases and the registry cache all gone) ends READY with the lost
chunks' records showing the retry; a sub-task lost again and again fails its stage, past
the retry budget, with a message saying the queue was lost; a main task lost from the
controller's queue is requested again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from task_controller.lost_queue import LOST_QUEUE_RETRIES
from tests.stack_support import Stack, running_stack, wait_for

MODEL = "lost-model"
QUEUE = keys.default_queue(MODEL)


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL)
        yield stack


def _request(stack: Stack, tmp_path: Path, **options: object) -> int:
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
        "1,A1,1,GB,WTC,GBP,52.1,-0.2\n"
    )
    analysis_id = stack.controller.create_analysis("a", model_id=MODEL, location_file=locations)
    stack.controller.request(analysis_id, "noop", options=dict(options))
    return analysis_id


def _lose_queue(client: redis.Redis) -> None:
    client.delete(*keys.queue_lists(QUEUE))


def _first(stack: Stack, analysis_id: int) -> object:
    return stack.subtasks(analysis_id)[0]


def test_a_lost_first_step_is_queued_again(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    analysis_id = _request(stack, tmp_path, noop_chunks=2)
    wait_for(
        lambda: (
            bool(stack.subtasks(analysis_id))
            and stack.subtasks(analysis_id)[0].status == "QUEUED"
            and any(redis_client.llen(q) for q in keys.queue_lists(QUEUE))
        ),
        30,
        "the first step queued",
    )
    _lose_queue(redis_client)
    wait_for(
        lambda: stack.subtasks(analysis_id)[0].retry_count == 1, 30, "the first step queued again"
    )
    stack.start_worker(MODEL)
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    first = stack.subtasks(analysis_id)[0]
    assert first.status == "COMPLETED"
    assert first.retry_count == 1
    assert "the queue was lost" in (first.retry_log or "")
    assert "the queue was lost; sent again from noop-prepare" in stack.log("controller")


def test_a_wiped_redis_mid_run_ends_ready(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    stack.start_worker(MODEL)
    analysis_id = _request(stack, tmp_path, noop_chunks=3, noop_sleep_s=2)
    wait_for(
        lambda: any(
            s.slug == "noop-chunk-1" and s.status == "STARTED" for s in stack.subtasks(analysis_id)
        ),
        30,
        "the first chunk running",
    )
    redis_client.flushdb()  # what a restart without persistence leaves
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}, 90) == "READY"
    subs = {s.slug: s for s in stack.subtasks(analysis_id)}
    assert all(s.status == "COMPLETED" for s in subs.values())
    assert subs["noop-chunk-2"].retry_count >= 1
    assert "the queue was lost" in (subs["noop-chunk-2"].retry_log or "")
    # the registry cache came back from the records database
    assert Registry(redis_client).get(MODEL).queue == QUEUE


def test_past_the_budget_the_stage_fails_saying_the_queue_was_lost(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    analysis_id = _request(stack, tmp_path, noop_chunks=2)
    for attempt in range(LOST_QUEUE_RETRIES + 1):
        wait_for(
            lambda attempt=attempt: (
                (  # type: ignore[misc]
                    bool(stack.subtasks(analysis_id))
                    and stack.subtasks(analysis_id)[0].status == "QUEUED"
                    and stack.subtasks(analysis_id)[0].retry_count == attempt
                    # recorded before it is sent: wait for the message itself
                    and any(redis_client.llen(q) for q in keys.queue_lists(QUEUE))
                )
                or stack.analysis(analysis_id).status == "INPUTS_GENERATION_ERROR"
            ),
            30,
            f"attempt {attempt} queued",
        )
        _lose_queue(redis_client)
    assert stack.wait_status(analysis_id, {"INPUTS_GENERATION_ERROR"}, 30)
    first = stack.subtasks(analysis_id)[0]
    assert first.status == "ERROR"
    assert first.retry_count == LOST_QUEUE_RETRIES
    assert "the queue was lost" in (first.error_log or "")
    assert f"queued again {LOST_QUEUE_RETRIES} times, giving up" in (first.error_log or "")


def test_a_lost_main_task_is_requested_again(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # No controller yet: the main task waits in the controller's queue, and is lost there.
    analysis_id = _request(stack, tmp_path, noop_chunks=2)
    assert any(redis_client.llen(q) for q in keys.queue_lists(keys.CONTROLLER_QUEUE))
    redis_client.delete(*keys.queue_lists(keys.CONTROLLER_QUEUE))
    stack.start_controller()
    stack.start_worker(MODEL)
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}, 60) == "READY"
    assert "its main task was lost with the queue; noop requested again" in stack.log("controller")
