"""Sub-task and analysis records as the workers move them (I/O: records DB and Redis).

Every transition is one database transaction that first checks the analysis is still on the
same run and still in progress, so a late or redelivered message of a cancelled, failed or
superseded run never moves the analysis back. The per-model main-task HASH the scaler reads
(``keys.main_tasks``) is cleared here when a stage ends, and announced on the model's
activity channel; the controller's janitor repairs it after a crash between the two.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda import keys
from oasis_keda.storage import Storage
from oasis_keda.store import StoredFile, SubTask, SubTaskStatus, make_engine
from oasis_keda.store import make_session_factory as _make_session_factory
from worker.stages import spec_for

logger = logging.getLogger(__name__)

FINAL = frozenset(
    {SubTaskStatus.COMPLETED.value, SubTaskStatus.ERROR.value, SubTaskStatus.CANCELLED.value}
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def main_task_field(analysis_id: int, stage: str) -> str:
    return f"{analysis_id}:{stage}"


def set_main_task(
    client: redis.Redis, model_id: str, analysis_id: int, stage: str, priority: int
) -> None:
    """Mark a main task in progress for the scaler, and wake it."""
    with client.pipeline() as pipe:
        pipe.hset(keys.main_tasks(model_id), main_task_field(analysis_id, stage), str(priority))
        pipe.publish(keys.activity_channel(model_id), "main-task")
        pipe.execute()


def clear_main_task(client: redis.Redis, model_id: str, analysis_id: int, stage: str) -> None:
    """The stage ended (in any way): the scaler stops counting it."""
    with client.pipeline() as pipe:
        pipe.hdel(keys.main_tasks(model_id), main_task_field(analysis_id, stage))
        pipe.publish(keys.activity_channel(model_id), "main-task")
        pipe.execute()


def _sqlite_normal_sync(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Recorder:
    """Record transitions over a records database, a Redis client and the storage tree.

    Safe to build before a fork: the engine is (re)created lazily in each process.
    """

    def __init__(self, *, database_url: str, client: redis.Redis, storage: Storage) -> None:
        self.database_url = database_url
        self.client = client
        self.storage = storage
        self._pid = -1
        self._sessions: sessionmaker[Session] | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None or self._pid != os.getpid():
            engine = make_engine(self.database_url)
            if engine.dialect.name == "sqlite":
                # WAL + synchronous=NORMAL: a commit no longer waits for an fsync (the
                # database stays consistent; a power cut may lose the last records only).
                event.listen(engine, "connect", _sqlite_normal_sync)
                engine.dispose()
            self._sessions = _make_session_factory(engine)
            self._pid = os.getpid()
        return self._sessions

    # -- worker side ---------------------------------------------------------------------

    def mark_queued(self, task_id: str) -> None:
        """The message of ``task_id`` reached the broker (first send, or a retry)."""
        with self.sessions.begin() as session:
            session.execute(
                update(SubTask)
                .where(
                    SubTask.task_id == task_id,
                    SubTask.status.in_([SubTaskStatus.PENDING.value, SubTaskStatus.STARTED.value]),
                )
                .values(status=SubTaskStatus.QUEUED.value, queue_time=utcnow())
            )

    def begin(self, subtask_id: int, *, task_id: str, worker: str, retries: int) -> bool:
        """A worker starts a sub-task. False: the run is over (cancelled, failed, superseded)
        and the sub-task must not run."""
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None:
                return False
            analysis = sub.analysis
            spec = spec_for(sub.stage)
            if analysis.run_number != sub.run_number or analysis.status not in spec.active:
                if sub.status not in FINAL:
                    sub.status = SubTaskStatus.CANCELLED.value
                    sub.end_time = utcnow()
                return False
            if sub.status == SubTaskStatus.COMPLETED.value:
                # Redelivered after it completed (killed before the ack): the chunk writes
                # atomically and Celery's chord counts each task once, so it simply runs again.
                return True
            now = utcnow()
            sub.status = SubTaskStatus.STARTED.value
            sub.start_time = now
            sub.queue_time = sub.queue_time or now
            sub.task_id = task_id
            sub.worker = worker
            sub.retry_count = max(sub.retry_count, retries)
            if analysis.status == spec.queued:
                analysis.status = spec.started
            return True

    def complete(self, subtask_id: int, *, output_log: str, events_share: bool = False) -> None:
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None or sub.status in (SubTaskStatus.ERROR.value,):
                return
            sub.status = SubTaskStatus.COMPLETED.value
            sub.end_time = utcnow()
            sub.output_log = output_log
            if events_share:
                self._count_events(session, sub)

    def _count_events(self, session: Session, sub: SubTask) -> None:
        analysis = sub.analysis
        chunks = analysis.analysis_chunks or 1
        done = session.scalars(
            select(SubTask.id).where(
                SubTask.analysis_id == sub.analysis_id,
                SubTask.run_number == sub.run_number,
                SubTask.slug.like("generate-losses-chunk-%"),
                SubTask.status == SubTaskStatus.COMPLETED.value,
            )
        ).all()
        analysis.num_events_complete = (analysis.num_events_total * len(done)) // chunks

    def retry(self, subtask_id: int, *, message: str, retries: int) -> None:
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None or sub.status in FINAL:
                return
            sub.status = SubTaskStatus.QUEUED.value
            sub.retry_count = retries
            sub.retry_log = (sub.retry_log or "") + f"retry {retries}: {message}\n"

    def fail(self, subtask_id: int, *, error_log: str, output_log: str) -> list[str]:
        """The sub-task failed for good: the stage ends in *_ERROR. Returns the task ids of
        the run's other unfinished sub-tasks (now CANCELLED), for revoking."""
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None:
                return []
            now = utcnow()
            sub.status = SubTaskStatus.ERROR.value
            sub.end_time = now
            sub.error_log = error_log
            sub.output_log = output_log
            analysis = sub.analysis
            spec = spec_for(sub.stage)
            if analysis.run_number != sub.run_number or analysis.status not in spec.active:
                return []
            analysis.status = spec.error
            analysis.task_finished = now
            traceback_file = self._write_text(
                session, analysis.id, sub.run_number, "traceback.txt", error_log
            )
            if spec.error == "RUN_ERROR":
                analysis.run_traceback_file_id = traceback_file.id
            else:
                analysis.input_generation_traceback_file_id = traceback_file.id
            revoke = cancel_unfinished(session, analysis.id, sub.run_number, except_id=sub.id)
            model_id, stage, analysis_id = analysis.model_id, sub.stage, analysis.id
        clear_main_task(self.client, model_id, analysis_id, stage)
        return revoke

    def finish(
        self, subtask_id: int, *, output_log: str, files: dict[str, Path] | None = None
    ) -> bool:
        """The stage's last sub-task ends: it and the analysis complete in one transaction
        (so COMPLETED < TOTAL holds until the status is final). ``files`` maps Analysis
        ``*_file_id`` attributes to produced files."""
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None:
                return False
            analysis = sub.analysis
            spec = spec_for(sub.stage)
            if analysis.run_number != sub.run_number or analysis.status not in spec.active:
                return False
            now = utcnow()
            for attribute, path in (files or {}).items():
                stored = self._store(session, path)
                setattr(analysis, attribute, stored.id)
            sub.status = SubTaskStatus.COMPLETED.value
            sub.end_time = now
            sub.output_log = output_log
            analysis.status = spec.done
            analysis.task_finished = now
            if spec.done == "RUN_COMPLETED":
                analysis.num_events_complete = analysis.num_events_total
            model_id, stage, analysis_id = analysis.model_id, sub.stage, analysis.id
        clear_main_task(self.client, model_id, analysis_id, stage)
        return True

    # -- files ---------------------------------------------------------------------------

    def _store(self, session: Session, path: Path) -> StoredFile:
        content_type = (
            "application/gzip"
            if path.name.endswith(".tar.gz")
            else "text/plain"
            if path.suffix in (".txt", ".log")
            else "text/csv"
            if path.suffix == ".csv"
            else "application/octet-stream"
        )
        stored = StoredFile(
            path=self.storage.relpath(path),
            filename=path.name,
            content_type=content_type,
            size_bytes=path.stat().st_size if path.is_file() else 0,
        )
        session.add(stored)
        session.flush()
        return stored

    def _write_text(
        self, session: Session, analysis_id: int, run_number: int, name: str, text: str
    ) -> StoredFile:
        root = self.storage.run_dirs(analysis_id, run_number).root
        root.mkdir(parents=True, exist_ok=True)
        path = root / name
        partial = root / f".{name}.partial"
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        return self._store(session, path)


def cancel_unfinished(
    session: Session, analysis_id: int, run_number: int, *, except_id: int | None = None
) -> list[str]:
    """Mark the run's unfinished sub-tasks CANCELLED; return their Celery task ids."""
    subs: Sequence[SubTask] = session.scalars(
        select(SubTask).where(
            SubTask.analysis_id == analysis_id,
            SubTask.run_number == run_number,
            SubTask.status.not_in(list(FINAL)),
        )
    ).all()
    now = utcnow()
    task_ids = []
    for sub in subs:
        if sub.id == except_id:
            continue
        sub.status = SubTaskStatus.CANCELLED.value
        sub.end_time = now
        if sub.task_id:
            task_ids.append(sub.task_id)
    return task_ids
