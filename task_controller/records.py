"""Controller-side record operations: analyses and portfolios, sub-task rows of a plan,
status counts, cancel, and the reconciliation of the scaler's main-task HASH.

Worker-side transitions (started, completed, failed, stage finished) live in
:mod:`worker.recording`; both move analyses through the core's compare-and-set status
machine (:mod:`oasis_keda.core.store.transitions`) over one records database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oasis_keda.core import eta, keys
from oasis_keda.core.main_tasks import main_task_field, main_task_value, planned_field
from oasis_keda.core.perspectives import PortfolioFiles
from oasis_keda.core.stages import INPUTS, LOSSES, StageSpec, stage_of_status
from oasis_keda.core.statuses import IN_PROGRESS, SUBTASK_FINAL, SubTaskStatus
from oasis_keda.core.storage import Storage
from oasis_keda.core.store import Analysis, StoredFile, SubTask, utcnow
from task_controller.errors import AnalysisNotFoundError

STATUS_COUNT_KEYS = ("PENDING", "QUEUED", "STARTED", "COMPLETED", "CANCELLED", "ERROR")
#: In a run's directory: the job its sub-tasks got, and the request that queued it, so that
#: what the broker lost can be sent again exactly as it was.
JOB_FILE = "job.json"
REQUEST_FILE = "request.json"


def write_run_file(run_root: Path, name: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON into a run's directory (atomically: renamed into place)."""
    run_root.mkdir(parents=True, exist_ok=True)
    partial = run_root / f".{name}.partial"
    partial.write_text(json.dumps(data, indent=2), encoding="utf-8")
    partial.replace(run_root / name)


def read_run_file(run_root: Path, name: str) -> dict[str, Any] | None:
    """What :func:`write_run_file` wrote; None if it is missing or unreadable."""
    try:
        data = json.loads((run_root / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlannedSubTask:
    slug: str
    name: str
    task: str
    task_id: str
    chunk_index: int | None = None


def planned_from_rows(spec: StageSpec, rows: Sequence[SubTask]) -> list[PlannedSubTask]:
    """The plan that wrote ``rows`` (same slugs, names and task ids), to send it again."""
    steps = {s.slug: s for s in (*spec.before, *spec.after)}
    planned = []
    for row in rows:
        assert row.task_id is not None
        if row.slug in steps:
            step, chunk_index = steps[row.slug], None
        else:
            step, chunk_index = spec.chunk, int(row.slug.rsplit("-", 1)[1])
        planned.append(
            PlannedSubTask(
                slug=row.slug,
                name=row.name,
                task=step.task,
                task_id=row.task_id,
                chunk_index=chunk_index,
            )
        )
    return planned


def store_file(
    session: Session,
    storage: Storage,
    source: Path,
    *,
    content_type: str,
    filename: str | None = None,
) -> StoredFile:
    """Copy a user's file into the storage directory (as ``filename`` if given) and record
    it under the user's name."""
    relpath, size = storage.store_upload(source, filename=filename)
    stored = StoredFile(
        path=relpath, filename=source.name, content_type=content_type, size_bytes=size
    )
    session.add(stored)
    session.flush()
    return stored


def store_text(
    session: Session, storage: Storage, analysis_id: int, run_number: int, name: str, text: str
) -> StoredFile:
    """A text file of a run (its traceback, say), written and recorded."""
    root = storage.run_dirs(analysis_id, run_number).root
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    partial = root / f".{name}.partial"
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    stored = StoredFile(
        path=storage.relpath(path),
        filename=name,
        content_type="text/plain",
        size_bytes=path.stat().st_size,
    )
    session.add(stored)
    session.flush()
    return stored


def input_dir(session: Session, storage: Storage, analysis: Analysis) -> Path:
    """The directory the analysis's latest input generation wrote its input files to."""
    stored = session.get(StoredFile, analysis.input_file_id) if analysis.input_file_id else None
    if stored is None:
        raise ValueError(f"analysis {analysis.id} has no input files")
    return storage.abspath(stored.path).parent / "inputs"


def portfolio_files(analysis: Analysis) -> PortfolioFiles:
    """Which exposure files the analysis's portfolio has."""
    portfolio = analysis.portfolio
    return PortfolioFiles(
        accounts=portfolio.accounts_file_id is not None,
        ri_info=portfolio.reinsurance_info_file_id is not None,
        ri_scope=portfolio.reinsurance_scope_file_id is not None,
    )


def get_analysis(session: Session, analysis_id: int) -> Analysis:
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        raise AnalysisNotFoundError(analysis_id)
    return analysis


def create_subtasks(
    session: Session,
    analysis: Analysis,
    *,
    stage: str,
    queue: str,
    planned: Sequence[PlannedSubTask],
) -> list[SubTask]:
    now = utcnow()
    rows = [
        SubTask(
            analysis_id=analysis.id,
            run_number=analysis.run_number,
            stage=stage,
            slug=item.slug,
            name=item.name,
            task_id=item.task_id,
            status=SubTaskStatus.PENDING.value,
            queue_name=queue,
            pending_time=now,
        )
        for item in planned
    ]
    session.add_all(rows)
    session.flush()
    return rows


def subtasks(session: Session, analysis_id: int, run_number: int | None = None) -> list[SubTask]:
    """Sub-tasks of a run (default: the analysis's current run), in creation order."""
    if run_number is None:
        run_number = get_analysis(session, analysis_id).run_number
    return list(
        session.scalars(
            select(SubTask)
            .where(SubTask.analysis_id == analysis_id, SubTask.run_number == run_number)
            .order_by(SubTask.id)
        )
    )


def status_count(session: Session, analysis: Analysis) -> dict[str, int]:
    """Oasis's ``status_count`` over the current run's sub-tasks."""
    rows = session.execute(
        select(SubTask.status, func.count())
        .where(SubTask.analysis_id == analysis.id, SubTask.run_number == analysis.run_number)
        .group_by(SubTask.status)
    ).all()
    counts: Counter[str] = Counter({status: n for status, n in rows})
    result = {key: counts.get(key, 0) for key in STATUS_COUNT_KEYS}
    result["TOTAL"] = sum(counts.values())
    result["TOTAL_IN_QUEUE"] = result["PENDING"] + result["QUEUED"]
    return result


def error_subtask_ids(session: Session, analysis: Analysis) -> list[int]:
    return list(
        session.scalars(
            select(SubTask.id).where(
                SubTask.analysis_id == analysis.id,
                SubTask.run_number == analysis.run_number,
                SubTask.status == SubTaskStatus.ERROR.value,
            )
        )
    )


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subtask_dict(sub: SubTask, *, logs: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": sub.id,
        "task_id": sub.task_id,
        "status": sub.status,
        "queue_name": sub.queue_name,
        "name": sub.name,
        "slug": sub.slug,
        "stage": sub.stage,
        "run_number": sub.run_number,
        "worker": sub.worker,
        "pending_time": _iso(sub.pending_time),
        "queue_time": _iso(sub.queue_time),
        "start_time": _iso(sub.start_time),
        "end_time": _iso(sub.end_time),
        "retry_count": sub.retry_count,
    }
    if logs:
        data.update(output_log=sub.output_log, error_log=sub.error_log, retry_log=sub.retry_log)
    return data


def analysis_dict(
    session: Session, analysis: Analysis, *, client: redis.Redis | None = None
) -> dict[str, Any]:
    """The shape ``analyses show --json`` prints (Oasis field names where they exist); with
    a Redis ``client``, the ETA of a stage in progress (:mod:`oasis_keda.core.eta`)."""
    return {
        "id": analysis.id,
        "name": analysis.name,
        "portfolio": analysis.portfolio_id,
        "model": analysis.model_id,
        "status": analysis.status,
        "run_mode": analysis.run_mode,
        "priority": analysis.priority,
        "run_number": analysis.run_number,
        "created": _iso(analysis.created),
        "modified": _iso(analysis.modified),
        "task_started": _iso(analysis.task_started),
        "task_finished": _iso(analysis.task_finished),
        "lookup_chunks": analysis.lookup_chunks,
        "analysis_chunks": analysis.analysis_chunks,
        "num_events_total": analysis.num_events_total,
        "num_events_complete": analysis.num_events_complete,
        "chunking_configuration": analysis.chunking_configuration,
        "input_file": analysis.input_file_id,
        "output_file": analysis.output_file_id,
        "settings_file": analysis.settings_file_id,
        "input_generation_traceback_file": analysis.input_generation_traceback_file_id,
        "run_traceback_file": analysis.run_traceback_file_id,
        "warnings": list(analysis.warnings or []),
        "sub_task_count": status_count(session, analysis)["TOTAL"],
        "sub_task_error_ids": error_subtask_ids(session, analysis),
        "status_count": status_count(session, analysis),
        "eta": None if client is None else eta.describe(session, client, analysis),
    }


def active_analyses(session: Session) -> list[Analysis]:
    """Analyses whose status says a stage is in progress."""
    return list(session.scalars(select(Analysis).where(Analysis.status.in_(sorted(IN_PROGRESS)))))


def stage_in_progress(analysis: Analysis) -> StageSpec | None:
    return stage_of_status(analysis.status)


def reconcile_main_tasks(
    session: Session, client: redis.Redis, model_ids: Sequence[str]
) -> tuple[int, int]:
    """Make each model's main-task HASH equal what the records say is in progress.

    Returns (fields added, fields removed). Run at controller start-up and by the janitor:
    a crash between a record change and the HASH change leaves them apart.
    """
    wanted: dict[str, dict[str, str]] = {m: {} for m in model_ids}
    for analysis in active_analyses(session):
        spec = stage_in_progress(analysis)
        if spec is None:
            continue
        stage = main_task_stage(session, analysis, spec)
        requested = analysis.task_started or analysis.modified
        wanted.setdefault(analysis.model_id, {})[main_task_field(analysis.id, stage)] = (
            main_task_value(analysis.priority, _epoch_ms(requested))
        )
    added = removed = 0
    for model_id, fields in wanted.items():
        key = keys.main_tasks(model_id)
        current = {
            (k.decode() if isinstance(k, bytes) else str(k)): v
            for k, v in client.hgetall(key).items()
        }
        stale = [f for f in current if f not in fields]
        missing = {f: p for f, p in fields.items() if f not in current}
        if not stale and not missing:
            continue
        with client.pipeline() as pipe:
            if stale:
                pipe.hdel(key, *stale)
            if missing:
                pipe.hset(key, mapping=dict(missing))  # type: ignore[arg-type]
            pipe.publish(keys.activity_channel(model_id), "main-task")
            pipe.execute()
        added += len(missing)
        removed += len(stale)
    return added, removed


def reconcile_planned(session: Session, client: redis.Redis, model_ids: Sequence[str]) -> int:
    """Make each model's planned-work HASH equal what the records say is left; returns the
    fields changed. A stage's count is its sub-tasks not finished; the loss stage expected
    by a generate-and-run in its inputs stage is kept; every other field goes (a crash
    between a stage's end and its clearing, or a refused run step, leaves one behind)."""
    current: dict[str, dict[str, str]] = {}
    for model_id in model_ids:
        raw = client.hgetall(keys.planned(model_id))
        current[model_id] = {_text(k): _text(v) for k, v in raw.items()}
    wanted: dict[str, dict[str, str]] = {m: {} for m in model_ids}
    for analysis in active_analyses(session):
        spec = stage_in_progress(analysis)
        have = current.get(analysis.model_id, {})
        if spec is None:
            continue
        stage = main_task_stage(session, analysis, spec)
        rows = [s for s in subtasks(session, analysis.id, analysis.run_number) if s.stage == stage]
        field = planned_field(analysis.id, stage)
        if rows:
            left = sum(1 for s in rows if s.status not in SUBTASK_FINAL)
            wanted.setdefault(analysis.model_id, {})[field] = str(left)
        elif field in have:
            wanted.setdefault(analysis.model_id, {})[field] = have[field]
        ahead = planned_field(analysis.id, LOSSES)
        if stage == INPUTS and ahead in have:
            wanted.setdefault(analysis.model_id, {})[ahead] = have[ahead]
    changed = 0
    for model_id, fields in wanted.items():
        have = current.get(model_id, {})
        stale = [f for f in have if f not in fields]
        differ = {f: v for f, v in fields.items() if have.get(f) != v}
        if not stale and not differ:
            continue
        with client.pipeline() as pipe:
            if stale:
                pipe.hdel(keys.planned(model_id), *stale)
            if differ:
                pipe.hset(keys.planned(model_id), mapping=dict(differ))  # type: ignore[arg-type]
            pipe.publish(keys.activity_channel(model_id), "planned")
            pipe.execute()
        changed += len(stale) + len(differ)
    return changed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _epoch_ms(when: dt.datetime) -> int:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return int(aware.timestamp() * 1000)


def main_task_stage(session: Session, analysis: Analysis, spec: StageSpec) -> str:
    """The stage whose main-task mark an in-progress analysis holds."""
    # A stage registered beside inputs and losses may share their statuses (the status
    # names the real stage): the run's sub-tasks say which stage was dispatched.
    stage = session.scalar(
        select(SubTask.stage)
        .where(SubTask.analysis_id == analysis.id, SubTask.run_number == analysis.run_number)
        .limit(1)
    )
    return stage or spec.stage
