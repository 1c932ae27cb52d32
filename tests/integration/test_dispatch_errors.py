"""Every dispatch error is recorded: the stage ends in its error status with the message on
its first sub-task and in the run's traceback file, and its main task is cleared, so no
analysis stays queued with nothing queued for it (real Redis, records DB and Celery app; the
dispatch runs in this process).

Covers: a location file whose first line is over 128 KiB, an empty file, a file with only a
header, a file that is not UTF-8; a planner that raises something nobody expected; a
broker send that fails after the rows were written (the written rows carry the error).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.core.stages import INPUTS
from task_controller import dispatch as dispatch_module
from task_controller import records
from tests.stack_support import Stack, running_stack

MODEL = "dispatch-model"
HEADER = "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency"
ROW = "1,1,1,GB,WTC,GBP"


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL)
        yield stack


def _dispatch_inputs(stack: Stack, tmp_path: Path, content: bytes) -> int:
    """Dispatch the inputs stage of an analysis whose stored location file holds
    ``content`` (written over a good file after creation: the dispatch must cope with
    whatever it finds, whatever checks came before)."""
    location = tmp_path / "location.csv"
    location.write_text(f"{HEADER}\n{ROW}\n")
    analysis_id = stack.controller.create_analysis("a", model_id=MODEL, location_file=location)
    with stack.controller.sessions() as session:
        stored = records.get_analysis(session, analysis_id).portfolio.location_file
        assert stored is not None
        path = stack.controller.storage.abspath(stored.path)
    path.write_bytes(content)
    run = stack.controller.request(analysis_id, INPUTS)
    assert stack.dispatcher().dispatch(analysis_id, run, INPUTS, {}) == 0
    return analysis_id


def _assert_recorded(
    stack: Stack, analysis_id: int, client: redis.Redis, pattern: str
) -> list[Any]:
    import re

    analysis = stack.analysis(analysis_id)
    assert analysis.status == "INPUTS_GENERATION_ERROR"
    assert analysis.input_generation_traceback_file_id is not None
    subs = stack.subtasks(analysis_id)
    assert subs[0].status == "ERROR"
    assert subs[0].end_time is not None
    assert re.search(pattern, subs[0].error_log or ""), subs[0].error_log
    assert all(s.status in {"ERROR", "CANCELLED"} for s in subs)
    traceback = next(stack.tmp_path.glob("storage/analyses/*/runs/*/traceback.txt"))
    assert re.search(pattern, traceback.read_text())
    assert not client.hexists(keys.main_tasks(MODEL), f"{analysis_id}:{INPUTS}")
    return subs


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (
            f"{HEADER},{'x' * (129 * 1024)}\n{ROW},1\n".encode(),
            r"line 1 \(the header\): field larger than field limit",
        ),
        (b"", r"location\.csv is empty"),
        (f"{HEADER}\n".encode(), r"location\.csv has a header but no location rows"),
        (f"{HEADER}\n{ROW}\n".encode("utf-16"), r"location\.csv is unreadable: 'utf-8' codec"),
    ],
    ids=["first-line-over-128KiB", "empty", "header-only", "not-utf-8"],
)
def test_bad_location_file_ends_the_stage_in_error(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis, content: bytes, pattern: str
) -> None:
    analysis_id = _dispatch_inputs(stack, tmp_path, content)
    subs = _assert_recorded(stack, analysis_id, redis_client, pattern)
    assert len(subs) == 1
    assert subs[0].error_log.startswith("location_file: ")  # type: ignore[union-attr]


def test_an_unexpected_planner_error_is_recorded(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(config: Any, job: Any) -> Any:
        raise ZeroDivisionError("planner bug")

    monkeypatch.setitem(dispatch_module.PLANNERS, INPUTS, explode)
    analysis_id = _dispatch_inputs(stack, tmp_path, f"{HEADER}\n{ROW}\n".encode())
    _assert_recorded(
        stack, analysis_id, redis_client, r"dispatch failed: ZeroDivisionError: planner bug"
    )


def test_a_failed_send_marks_the_written_rows(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unsendable:
        def apply_async(self) -> None:
            raise ConnectionError("broker gone")

    monkeypatch.setattr(dispatch_module, "build_canvas", lambda *a, **k: Unsendable())
    analysis_id = _dispatch_inputs(stack, tmp_path, f"{HEADER}\n{ROW}\n".encode())
    subs = _assert_recorded(
        stack, analysis_id, redis_client, r"dispatch failed: ConnectionError: broker gone"
    )
    assert len(subs) > 1  # the planned rows: the first carries the error, the rest cancelled
    assert {s.status for s in subs[1:]} == {"CANCELLED"}
