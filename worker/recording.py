"""Sub-task and analysis records as the workers move them (I/O: records DB and Redis).

The worker side of the analysis status machine (:mod:`oasis_keda.core.store.transitions`):
a sub-task starts, completes, is retried, fails, or finishes its stage. Every transition is
one database transaction that first checks the analysis is still on the same run and still
in progress, so a late or redelivered message of a cancelled, failed or superseded run never
moves the analysis back. When a stage ends here its main-task mark for the scaler is
cleared (:mod:`oasis_keda.core.main_tasks`); the controller's janitor repairs the mark after
a crash between the two.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import case, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.core import eta, eta_log
from oasis_keda.core.main_tasks import clear_main_task, planned_done
from oasis_keda.core.stages import spec_for
from oasis_keda.core.statuses import SUBTASK_FINAL, AnalysisStatus, SubTaskStatus
from oasis_keda.core.storage import Storage
from oasis_keda.core.store import Analysis, StoredFile, SubTask, make_engine, utcnow
from oasis_keda.core.store import make_session_factory as _make_session_factory
from oasis_keda.core.store.transitions import (
    cancel_subtask,
    cancel_unfinished,
    rowcount,
    transition,
)
from worker import metrics

logger = logging.getLogger(__name__)


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
        and the sub-task must not run.

        Status changes are conditional UPDATEs (compare-and-set), never a read then a blind
        write: a cancel that commits meanwhile is never turned back into *_STARTED.
        """
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None:
                return False
            spec = spec_for(sub.stage)
            # One conditional UPDATE checks that the run is still in progress and moves a
            # queued analysis to *_STARTED; it also takes SQLite's write lock, so nothing
            # can change the analysis until this transaction commits.
            active = transition(
                session,
                sub.analysis_id,
                sub.run_number,
                spec.active,
                status=case((Analysis.status == spec.queued, spec.started), else_=Analysis.status),
            )
            if not active:
                cancel_subtask(session, subtask_id)
                return False
            if sub.status == SubTaskStatus.COMPLETED.value:
                # Redelivered after it completed (killed before the ack): the chunk writes
                # atomically and Celery's chord counts each task once, so it simply runs again.
                return True
            now = utcnow()
            retry_count, retry_log = max(sub.retry_count, retries), sub.retry_log
            if sub.status == SubTaskStatus.STARTED.value:
                # An attempt started and never finished: its worker was lost and the message
                # came back. This is a new attempt; the record keeps the first one's trace.
                retry_count = max(sub.retry_count + 1, retries)
                retry_log = (retry_log or "") + (
                    f"retry {retry_count}: attempt started {(sub.start_time or now):%Y-%m-%dT%H:%M:%S} "
                    f"on {sub.worker or 'an unknown worker'} was lost with its worker; "
                    f"run again on {worker}\n"
                )
            started = session.execute(
                update(SubTask)
                .where(SubTask.id == subtask_id, SubTask.status.not_in(list(SUBTASK_FINAL)))
                .values(
                    status=SubTaskStatus.STARTED.value,
                    start_time=now,
                    queue_time=func.coalesce(SubTask.queue_time, now),
                    task_id=task_id,
                    worker=worker,
                    retry_count=retry_count,
                    retry_log=retry_log,
                )
                .execution_options(synchronize_session=False)
            )
            return rowcount(started) == 1  # 0: cancelled meanwhile

    def complete(self, subtask_id: int, *, output_log: str, events_share: bool = False) -> None:
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None or sub.status in (SubTaskStatus.ERROR.value,):
                return
            first = sub.status != SubTaskStatus.COMPLETED.value  # a redelivery counts once
            sub.status = SubTaskStatus.COMPLETED.value
            sub.end_time = utcnow()
            sub.output_log = output_log
            if events_share:
                self._count_events(session, sub)
            model_id, analysis_id, stage = sub.analysis.model_id, sub.analysis_id, sub.stage
            run_number = sub.run_number
        if first:
            try:
                planned_done(self.client, str(model_id), analysis_id, stage)
            except redis.RedisError as exc:  # the janitor reconciles the count
                logger.warning("planned count of analysis %s not updated: %s", analysis_id, exc)
            self._estimate(analysis_id, run_number, stage)

    def _estimate(self, analysis_id: int, run_number: int, stage: str) -> None:
        """Estimate the stage's time left now, if one is due, to compare with its actual end
        (best effort: an estimate never holds up or fails a sub-task)."""
        try:
            if not eta_log.estimate_due(self.client, analysis_id, run_number, stage):
                return
            with self.sessions() as session:
                analysis = session.get(Analysis, analysis_id)
                if analysis is None or analysis.run_number != run_number:
                    return
                found = eta.estimate(session, self.client, analysis)
            if found is not None and found.stage == stage:
                eta_log.record_estimate(
                    self.client, analysis_id, run_number, stage, found.remaining_s
                )
        except Exception as exc:  # noqa: BLE001 - an estimate is never worth a failed sub-task
            logger.warning("no ETA for analysis %s: %s", analysis_id, exc)

    def _settle(self, analysis_id: int, run_number: int, stage: str, *, ok: bool) -> None:
        try:
            outcome = eta_log.settle(self.client, analysis_id, run_number, stage, ok=ok)
        except redis.RedisError as exc:  # the estimates expire by themselves
            logger.warning("ETA of analysis %s not settled: %s", analysis_id, exc)
            return
        if outcome is not None:
            metrics.eta_settled(stage, outcome.errors_s)

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
            if sub is None or sub.status in SUBTASK_FINAL:
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
            session.execute(
                update(SubTask)
                .where(SubTask.id == subtask_id)
                .values(
                    status=SubTaskStatus.ERROR.value,
                    end_time=now,
                    error_log=error_log,
                    output_log=output_log,
                )
                .execution_options(synchronize_session=False)
            )
            spec = spec_for(sub.stage)
            analysis_id, run_number, stage = sub.analysis_id, sub.run_number, sub.stage
            if not transition(
                session, analysis_id, run_number, spec.active, status=spec.error, task_finished=now
            ):
                return []  # the run was already over
            traceback_file = self._write_text(
                session, analysis_id, run_number, "traceback.txt", error_log
            )
            field = (
                "run_traceback_file_id"
                if spec.error == AnalysisStatus.RUN_ERROR.value
                else "input_generation_traceback_file_id"
            )
            session.execute(
                update(Analysis)
                .where(Analysis.id == analysis_id)
                .values({field: traceback_file.id})
                .execution_options(synchronize_session=False)
            )
            revoke = cancel_unfinished(session, analysis_id, run_number, except_id=subtask_id)
            model_id = session.scalar(select(Analysis.model_id).where(Analysis.id == analysis_id))
        clear_main_task(self.client, str(model_id), analysis_id, stage)
        self._settle(analysis_id, run_number, stage, ok=False)
        return revoke

    def finish(
        self,
        subtask_id: int,
        *,
        output_log: str,
        files: dict[str, Path] | None = None,
        next_stage: str | None = None,
    ) -> bool:
        """The stage's last sub-task ends: it and the analysis complete in one transaction
        (so COMPLETED < TOTAL holds until the status is final). ``files`` maps Analysis
        ``*_file_id`` attributes to produced files (a directory is stored as the tar.gz
        made of it when it is downloaded). ``next_stage``: the stage the analysis
        goes on with (its scaler mark replaces this stage's at once)."""
        with self.sessions.begin() as session:
            sub = session.get(SubTask, subtask_id)
            if sub is None:
                return False
            spec = spec_for(sub.stage)
            analysis_id, run_number, stage = sub.analysis_id, sub.run_number, sub.stage
            now = utcnow()
            values: dict[str, Any] = {"status": spec.done, "task_finished": now}
            if spec.done == AnalysisStatus.RUN_COMPLETED.value:
                values["num_events_complete"] = Analysis.num_events_total
            if not transition(session, analysis_id, run_number, spec.active, **values):
                return False  # cancelled or failed meanwhile: nothing is reported complete
            file_ids = {attr: self._store(session, path).id for attr, path in (files or {}).items()}
            if file_ids:
                session.execute(
                    update(Analysis)
                    .where(Analysis.id == analysis_id)
                    .values(file_ids)
                    .execution_options(synchronize_session=False)
                )
            session.execute(
                update(SubTask)
                .where(SubTask.id == subtask_id)
                .values(status=SubTaskStatus.COMPLETED.value, end_time=now, output_log=output_log)
                .execution_options(synchronize_session=False)
            )
            model_id, priority = session.execute(
                select(Analysis.model_id, Analysis.priority).where(Analysis.id == analysis_id)
            ).one()
        clear_main_task(
            self.client, str(model_id), analysis_id, stage, next_stage=next_stage, priority=priority
        )
        self._settle(analysis_id, run_number, stage, ok=True)
        return True

    # -- files ---------------------------------------------------------------------------

    def _store(self, session: Session, path: Path) -> StoredFile:
        if path.is_dir():
            # a stage's inputs or outputs: served as a tar.gz made when downloaded
            stored = StoredFile(
                path=self.storage.relpath(path),
                filename=f"{path.name}.tar.gz",
                content_type="application/gzip",
                size_bytes=0,
            )
            session.add(stored)
            session.flush()
            return stored
        content_type = (
            "application/gzip"
            if path.name.endswith(".tar.gz")
            else "text/plain"
            if path.suffix in (".txt", ".log")
            else "text/csv"
            if path.suffix == ".csv"
            else "application/json"
            if path.suffix == ".json"
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
