"""The ETA of a running stage: step estimates from this run and the model's history, scaled
by size, scheduled onto the analysis's workers; and the settling of estimates against the
stage's actual end. Records in a real SQLite database, live workers in a real Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session

from oasis_keda.core import eta, eta_log, keys
from oasis_keda.core.main_tasks import planned_field
from oasis_keda.core.stages import INPUTS_SPEC, LOSSES, LOSSES_SPEC, StageSpec
from oasis_keda.core.statuses import AnalysisStatus, SubTaskStatus
from oasis_keda.core.store import (
    Analysis,
    Portfolio,
    SubTask,
    make_engine,
    make_session_factory,
    utcnow,
)

MODEL = "m1"
QUEUE = "q-m1"
DONE, STARTED, QUEUED = (
    SubTaskStatus.COMPLETED.value,
    SubTaskStatus.STARTED.value,
    SubTaskStatus.QUEUED.value,
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    with sessions() as s:
        s.add(Portfolio(id=1, name="p"))
        s.flush()
        yield s


def _analysis(session: Session, pk: int, *, status: str, rows: int, chunks: int) -> Analysis:
    a = Analysis(
        id=pk,
        name=f"a{pk}",
        portfolio_id=1,
        model_id=MODEL,
        status=status,
        run_number=1,
        lookup_rows=rows,
        lookup_chunks=chunks,
    )
    session.add(a)
    session.flush()
    return a


def _sub(
    session: Session,
    a: Analysis,
    spec: StageSpec,
    slug: str,
    status: str,
    *,
    seconds: float | None = None,
    started_ago: float | None = None,
) -> None:
    now = utcnow()
    start = end = None
    if seconds is not None:  # completed, ended a minute ago
        end = now - dt.timedelta(seconds=60)
        start = end - dt.timedelta(seconds=seconds)
    elif started_ago is not None:
        start = now - dt.timedelta(seconds=started_ago)
    session.add(
        SubTask(
            analysis_id=a.id,
            run_number=a.run_number,
            stage=spec.stage,
            slug=slug,
            name=slug,
            status=status,
            queue_name=QUEUE,
            start_time=start,
            end_time=end,
        )
    )
    session.flush()


def _finished_inputs(
    session: Session, pk: int, *, rows: int, chunk_s: float, write_s: float
) -> None:
    """An earlier analysis of the model: 2 lookup chunks, every step recorded."""
    a = _analysis(session, pk, status=AnalysisStatus.READY.value, rows=rows, chunks=2)
    _sub(session, a, INPUTS_SPEC, "prepare-input-generation-params", DONE, seconds=1.0)
    for k in (1, 2):
        _sub(session, a, INPUTS_SPEC, f"prepare-keys-file-{k}", DONE, seconds=chunk_s)
    _sub(session, a, INPUTS_SPEC, "collect-keys", DONE, seconds=0.5)
    _sub(session, a, INPUTS_SPEC, "write-input-files", DONE, seconds=write_s)
    _sub(session, a, INPUTS_SPEC, "cleanup-input-generation", DONE, seconds=1.0)


def test_chunk_phase_gives_each_chunk_to_the_earliest_free_worker() -> None:
    assert eta.chunk_phase([2.0, 5.0], 3, 4.0, 2) == pytest.approx(10.0)
    assert eta.chunk_phase([], 4, 3.0, 4) == pytest.approx(3.0)
    assert eta.chunk_phase([], 4, 3.0, 1) == pytest.approx(12.0)
    assert eta.chunk_phase([7.0], 0, 3.0, 2) == pytest.approx(7.0)
    assert eta.chunk_phase([], 0, 3.0, 0) == 0.0


def test_history_is_scaled_by_the_size_of_each_step(session: Session) -> None:
    # 100 rows in 2 chunks: 5 s per 50-row chunk, 2 s to write the inputs of 100 rows
    _finished_inputs(session, 1, rows=100, chunk_s=5.0, write_s=2.0)
    # 400 rows in 4 chunks of 100: twice the rows per chunk, four times the portfolio
    a = _analysis(
        session, 2, status=AnalysisStatus.INPUTS_GENERATION_STARTED.value, rows=400, chunks=4
    )
    _sub(session, a, INPUTS_SPEC, "prepare-input-generation-params", QUEUED)
    for k in range(1, 5):
        _sub(session, a, INPUTS_SPEC, f"prepare-keys-file-{k}", QUEUED)
    for slug in ("collect-keys", "write-input-files", "cleanup-input-generation"):
        _sub(session, a, INPUTS_SPEC, slug, QUEUED)
    found = eta.estimate(session, None, a, workers=2)
    assert found is not None
    assert found.basis == "model history"
    assert found.unknown == ()
    # serial: params 4 + collect 2 + write 8 + cleanup 4; chunks: 4 x 10 s on 2 workers = 20
    assert found.remaining_s == pytest.approx(4 + 20 + 2 + 8 + 4)
    assert found.then_s is None


def test_this_runs_chunks_outweigh_history_and_running_ones_count_their_elapsed_time(
    session: Session,
) -> None:
    _finished_inputs(session, 1, rows=100, chunk_s=5.0, write_s=2.0)
    a = _analysis(
        session, 2, status=AnalysisStatus.INPUTS_GENERATION_STARTED.value, rows=100, chunks=4
    )
    _sub(session, a, INPUTS_SPEC, "prepare-input-generation-params", DONE, seconds=1.0)
    _sub(session, a, INPUTS_SPEC, "prepare-keys-file-1", DONE, seconds=12.0)
    _sub(session, a, INPUTS_SPEC, "prepare-keys-file-2", DONE, seconds=12.0)
    _sub(session, a, INPUTS_SPEC, "prepare-keys-file-3", STARTED, started_ago=4.0)
    _sub(session, a, INPUTS_SPEC, "prepare-keys-file-4", QUEUED)
    for slug in ("collect-keys", "write-input-files", "cleanup-input-generation"):
        _sub(session, a, INPUTS_SPEC, slug, QUEUED)
    found = eta.estimate(session, None, a, workers=2)
    assert found is not None
    assert found.basis == "this run and model history"
    # chunk 3 has about 8 s left, chunk 4 takes 12 s on the other worker; then 0.5 + 2 + 1
    assert found.remaining_s == pytest.approx(12 + 3.5, abs=0.5)


def test_no_estimate_without_any_chunk_duration(session: Session) -> None:
    a = _analysis(
        session, 1, status=AnalysisStatus.INPUTS_GENERATION_STARTED.value, rows=10, chunks=2
    )
    for slug in INPUTS_SPEC.slugs(2):
        _sub(session, a, INPUTS_SPEC, slug, QUEUED)
    assert eta.estimate(session, None, a, workers=1) is None
    _sub(session, a, INPUTS_SPEC, "prepare-keys-file-1", DONE, seconds=3.0)
    found = eta.estimate(session, None, a, workers=1)
    assert found is not None
    assert "write-input-files" in found.unknown  # said so, and taken to last as a chunk:
    # 5 steps besides the chunks (the two writing steps one after the other on 1 worker)
    assert found.remaining_s == pytest.approx(5 * 3.0 + 2 * 3.0)
    found = eta.estimate(session, None, a, workers=2)
    assert found is not None  # on 2 workers the writing steps run side by side, chunks too
    assert found.remaining_s == pytest.approx(4 * 3.0 + 3.0)


def test_no_estimate_for_an_analysis_without_a_stage_in_progress(session: Session) -> None:
    a = _analysis(session, 1, status=AnalysisStatus.READY.value, rows=10, chunks=2)
    assert eta.estimate(session, None, a, workers=1) is None


def test_workers_are_shared_by_unfinished_sub_tasks(
    session: Session, redis_client: redis.Redis
) -> None:
    far = 10**15  # live-lease deadlines (ms) far ahead
    redis_client.zadd(keys.leases_live(QUEUE), {"w1": far, "w2": far, "w3": far, "w4": far})
    big = _analysis(
        session, 1, status=AnalysisStatus.INPUTS_GENERATION_STARTED.value, rows=10, chunks=3
    )
    small = _analysis(
        session, 2, status=AnalysisStatus.INPUTS_GENERATION_STARTED.value, rows=10, chunks=1
    )
    for k in (1, 2, 3):
        _sub(session, big, INPUTS_SPEC, f"prepare-keys-file-{k}", QUEUED)
    _sub(session, small, INPUTS_SPEC, "prepare-keys-file-1", QUEUED)
    assert eta.workers_for(session, redis_client, big, QUEUE) == 3
    assert eta.workers_for(session, redis_client, small, QUEUE) == 1
    redis_client.delete(keys.leases_live(QUEUE))
    assert eta.workers_for(session, redis_client, big, QUEUE) == 1  # none live yet: at least 1


def test_a_generate_and_run_adds_its_planned_loss_stage(
    session: Session, redis_client: redis.Redis
) -> None:
    done = _analysis(session, 1, status=AnalysisStatus.RUN_COMPLETED.value, rows=100, chunks=2)
    done.num_events_total, done.analysis_chunks = 10, 2
    for slug, seconds in (
        ("prepare-losses-generation-directory", 1.0),
        ("generate-losses-chunk-1", 6.0),
        ("generate-losses-chunk-2", 6.0),
        ("generate-losses-output", 2.0),
        ("cleanup-losses-generation", 1.0),
    ):
        _sub(session, done, LOSSES_SPEC, slug, DONE, seconds=seconds)
    _finished_inputs(session, 2, rows=100, chunk_s=5.0, write_s=2.0)
    a = _analysis(
        session, 3, status=AnalysisStatus.INPUTS_GENERATION_STARTED.value, rows=100, chunks=2
    )
    for slug in INPUTS_SPEC.slugs(2):
        _sub(session, a, INPUTS_SPEC, slug, QUEUED)
    # the controller planned the loss stage: 4 chunks (with its 3 other steps)
    redis_client.hset(keys.planned(MODEL), planned_field(a.id, LOSSES), "7")
    found = eta.estimate(session, redis_client, a, workers=2)
    assert found is not None and found.then_s is not None
    assert found.then_s == pytest.approx(1 + 2 * 6 + 2 + 1)  # 4 chunks of 6 s on 2 workers
    shown = found.as_dict()
    assert shown["remaining_s"] == pytest.approx(found.remaining_s + found.then_s, abs=0.1)
    assert "then losses" in eta.text(shown)


def test_settle_compares_every_estimate_with_the_actual_end(redis_client: redis.Redis) -> None:
    eta_log.record_estimate(redis_client, 5, 1, "inputs", 0.0)
    eta_log.record_estimate(redis_client, 5, 1, "inputs", 10.0)
    outcome = eta_log.settle(redis_client, 5, 1, "inputs")
    assert outcome is not None and outcome.estimates == 2
    assert outcome.errors_s[0] == pytest.approx(0.0, abs=0.5)
    assert outcome.errors_s[1] == pytest.approx(10.0, abs=0.5)
    assert not redis_client.exists(keys.eta_estimates(5, 1, "inputs"))
    assert eta_log.outcomes(redis_client)[0]["analysis_id"] == 5


def test_a_failed_stage_settles_nothing(redis_client: redis.Redis) -> None:
    eta_log.record_estimate(redis_client, 6, 1, "losses", 3.0)
    assert eta_log.settle(redis_client, 6, 1, "losses", ok=False) is None
    assert not redis_client.exists(keys.eta_estimates(6, 1, "losses"))
    assert eta_log.outcomes(redis_client) == []
