"""The controller process's dispatch of a stage: plan its chunks, write its sub-task rows,
send its canvas. The dispatch side of the task controller; what it dispatches was queued by
a request (:mod:`task_controller.requests`) as a main task on the controller's queue.

A main task may be delivered more than once (a controller killed while holding it is
restored by the janitor), so a dispatch is idempotent: it acts only while the analysis is
still ``*_QUEUED`` on the same run, and rows written by an earlier delivery whose canvas
never left are sent again with their recorded task ids. A stage that cannot be planned
(bad location file, model directory, chunking), or whose dispatch fails in any other way,
ends in ``*_ERROR``, the message recorded on its first sub-task and in the run's traceback
file: no analysis stays queued with nothing queued for it.

How a stage is planned is looked up by its name in :data:`PLANNERS`: inputs by location
rows, losses by events. :func:`register_planner` adds the planner of a stage added beside
them (the test harness's trivial stage, see docs/CONTROLLER.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.core import keys
from oasis_keda.core.config import ChunkingConfig
from oasis_keda.core.errors import ModelNotFoundError
from oasis_keda.core.main_tasks import clear_main_task, set_planned
from oasis_keda.core.model_dir import ModelDirError
from oasis_keda.core.registry import ModelRecord, Registry
from oasis_keda.core.stages import INPUTS, LOSSES, Job, StageSpec, spec_for
from oasis_keda.core.statuses import SubTaskStatus
from oasis_keda.core.storage import Storage
from oasis_keda.core.store import Analysis, StoredFile, SubTask, utcnow
from oasis_keda.core.store.transitions import cancel_unfinished, transition
from task_controller import metrics, records
from task_controller.analysis_config import (
    chunking_of,
    default_settings,
    events_of,
    model_dir_of,
)
from task_controller.canvas import build_canvas, plan_subtasks
from task_controller.chunking import ChunkPlan, PlanError, plan_lookup, plan_losses
from task_controller.errors import RequestError

logger = logging.getLogger(__name__)

DISPATCH_TASK = "oasis_keda.controller.dispatch"


def main_task_id(analysis_id: int, run_number: int) -> str:
    """The task id of a run's main task: known from the records alone, so that the janitor
    can tell whether the broker still holds it."""
    return f"oasis-keda-main-{analysis_id}-{run_number}"


#: Plans a stage from its chunking configuration and job; raises PlanError to refuse it.
Planner = Callable[[ChunkingConfig, Job], ChunkPlan]


def _plan_inputs(config: ChunkingConfig, job: Job) -> ChunkPlan:
    from worker.errors import InputError
    from worker.exposure import count_locations

    if job["location_file"] is None:
        raise PlanError("location_file", "the portfolio has no location file")
    try:
        rows = count_locations(Path(job["location_file"]))
    except InputError as exc:
        raise PlanError("location_file", str(exc)) from exc
    return plan_lookup(config, rows)


def _plan_losses(config: ChunkingConfig, job: Job) -> ChunkPlan:
    return plan_losses(config, job["events"])


PLANNERS: dict[str, Planner] = {INPUTS: _plan_inputs, LOSSES: _plan_losses}


def warm_imports() -> None:
    """Import what a dispatch reads model directories and location files with (oasislmf's
    config loader, pandas): seconds in a fresh process, paid at start rather than by the
    first analysis dispatched."""
    import oasislmf.utils.inputs  # noqa: F401 - read_model_dir's config loader

    import worker.exposure  # noqa: F401 - count_locations


def register_planner(stage: str, planner: Planner) -> None:
    """Plan ``stage`` (a stage registered beside inputs and losses) with ``planner``."""
    PLANNERS[stage] = planner


@dataclasses.dataclass(kw_only=True)
class Dispatcher:
    """Everything a dispatch needs. Cheap to build; one per controller process."""

    sessions: sessionmaker[Session]
    client: redis.Redis
    storage: Storage
    app: Celery

    @property
    def registry(self) -> Registry:
        return Registry(self.client)

    def dispatch(
        self, analysis_id: int, run_number: int, stage: str, options: dict[str, Any]
    ) -> int:
        """Plan the stage and send its canvas. Returns the number of sub-tasks (0: skipped
        or failed).

        Any exception on the way ends the stage in its error status with the message
        recorded, so that no analysis stays queued with nothing queued for it. Only a
        failure to record that (the records database unreachable) propagates.
        """
        spec = spec_for(stage)
        try:
            return self._dispatch(analysis_id, run_number, spec, options)
        except Exception as exc:
            logger.exception(
                "analysis %s run %s: %s dispatch failed", analysis_id, run_number, stage
            )
            with self.sessions.begin() as session:
                analysis = records.get_analysis(session, analysis_id)
                if analysis.run_number != run_number:
                    return 0
                self._fail_dispatch(session, analysis, spec, exc)
                model_id = analysis.model_id
            with contextlib.suppress(redis.RedisError):  # else the janitor's reconcile
                clear_main_task(self.client, model_id, analysis_id, stage)
            metrics.failed(stage)
            return 0

    def _dispatch(
        self, analysis_id: int, run_number: int, spec: StageSpec, options: dict[str, Any]
    ) -> int:
        stage = spec.stage
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            if analysis.run_number != run_number or analysis.status != spec.queued:
                logger.info(
                    "analysis %s run %s: no longer queued, not dispatched", analysis_id, run_number
                )
                return 0
            existing = records.subtasks(session, analysis_id, run_number)
            if existing and any(s.status != SubTaskStatus.PENDING.value for s in existing):
                logger.info("analysis %s run %s: already dispatched", analysis_id, run_number)
                return 0
            try:
                model = self.registry.get(analysis.model_id)
                job = self._job(session, analysis, model, spec, options)
                plan = self._plan(analysis, model, job)
            except Exception as exc:  # noqa: BLE001 - every refusal and every surprise alike
                self._fail_dispatch(session, analysis, spec, exc)
                model_id = analysis.model_id
                failed = True
            else:
                failed = False
                job["num_chunks"] = plan.chunks
                if existing:
                    # A controller died between writing the rows and sending the canvas:
                    # send it now, with the recorded task ids (nothing of it ran).
                    planned = records.planned_from_rows(spec, existing)
                    rows = existing
                    plan = dataclasses.replace(
                        plan, chunks=len(planned) - len(spec.before) - len(spec.after)
                    )
                    job["num_chunks"] = plan.chunks
                else:
                    planned = plan_subtasks(spec, plan.chunks)
                    rows = records.create_subtasks(
                        session, analysis, stage=stage, queue=model.queue, planned=planned
                    )
                if stage == LOSSES:
                    analysis.analysis_chunks = plan.chunks
                    analysis.num_events_total = plan.basis or plan.chunks
                elif stage == INPUTS:
                    analysis.lookup_chunks = plan.chunks
                    analysis.lookup_rows = plan.basis
                records.write_run_file(Path(job["run_root"]), records.JOB_FILE, dict(job))
                ahead = self._planned_ahead(analysis, model, job, spec, len(planned))
                model_id = analysis.model_id
                canvas = build_canvas(
                    self.app, spec, job, planned, [r.id for r in rows], priority=analysis.priority
                )
        if failed:
            clear_main_task(self.client, model_id, analysis_id, stage)
            metrics.failed(stage)
            return 0
        # Recorded before anything is published: the scaler sees the stage's whole size.
        set_planned(self.client, model_id, analysis_id, ahead)
        canvas.apply_async()
        metrics.dispatched(stage, plan.chunks)
        # The publish hook marks it too; doing it here as well means a repeated delivery of
        # this main task never sends the canvas twice, even if the hook's write was lost.
        self.app.oasis.recorder.mark_queued(planned[0].task_id)
        logger.info(
            "analysis %s run %s: %s dispatched, %d chunks on %s",
            analysis_id,
            run_number,
            stage,
            plan.chunks,
            job["queue"],
        )
        return len(planned)

    def _planned_ahead(
        self, analysis: Analysis, model: ModelRecord, job: Job, spec: StageSpec, count: int
    ) -> dict[str, int]:
        """The planned work to record: this stage's sub-tasks and, for a generate-and-run,
        the loss stage's expected sub-tasks (its chunking and the event set tell how many)."""
        ahead = {spec.stage: count}
        if spec.stage == INPUTS and job["options"].get("then_run"):
            try:
                losses = plan_losses(chunking_of(analysis, model), job["events"])
            except PlanError:
                return ahead  # the run step will refuse it: nothing is expected
            loss_spec = spec_for(LOSSES)
            ahead[LOSSES] = len(loss_spec.before) + losses.chunks + len(loss_spec.after)
        return ahead

    def _job(
        self,
        session: Session,
        analysis: Analysis,
        model: ModelRecord,
        spec: StageSpec,
        options: dict[str, Any],
    ) -> Job:
        """The job every sub-task of the stage gets: absolute paths and the run's settings
        file, so that a worker never reads the registry or the records to find its input."""
        dirs = self.storage.run_dirs(analysis.id, analysis.run_number).create()
        model_dir = model_dir_of(model)
        settings = analysis.settings
        if settings is None and model_dir is not None:
            # Inputs may be generated before the analysis has settings (Oasis allows it):
            # use the model's own analysis settings, named in its oasislmf.json, if any.
            settings = default_settings(model_dir)
        settings_file: str | None = None
        if settings is not None:
            path = dirs.root / "analysis_settings.json"
            path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
            settings_file = str(path)
        portfolio = analysis.portfolio
        location = portfolio.location_file
        accounts = portfolio.accounts_file
        ri_info, ri_scope = portfolio.reinsurance_info_file, portfolio.reinsurance_scope_file
        currency = portfolio.currency_conversion_json
        input_dir: str | None = None
        if spec.stage == LOSSES and analysis.input_file_id is not None:
            input_dir = str(records.input_dir(session, self.storage, analysis))
        return Job(
            analysis_id=analysis.id,
            run_number=analysis.run_number,
            stage=spec.stage,
            model_id=model.model_id,
            model_dir=str(model_dir.root) if model_dir else model.model_dir,
            queue=model.queue,
            num_chunks=1,
            run_root=str(dirs.root),
            location_file=str(self.storage.abspath(location.path)) if location else None,
            accounts_file=str(self.storage.abspath(accounts.path)) if accounts else None,
            ri_info_file=str(self.storage.abspath(ri_info.path)) if ri_info else None,
            ri_scope_file=str(self.storage.abspath(ri_scope.path)) if ri_scope else None,
            currency_conversion_json=str(self.storage.abspath(currency.path)) if currency else None,
            reporting_currency=portfolio.reporting_currency,
            settings_file=settings_file,
            input_dir=input_dir,
            events=events_of(model_dir, analysis),
            options=options,
        )

    def _plan(self, analysis: Analysis, model: ModelRecord, job: Job) -> ChunkPlan:
        planner = PLANNERS.get(job["stage"])
        if planner is None:  # a stage registered without its planner: refuse, not guess
            raise PlanError("stage", f"no planner for stage {job['stage']!r}")
        return planner(chunking_of(analysis, model), job)

    def _fail_dispatch(
        self, session: Session, analysis: Analysis, spec: StageSpec, exc: Exception
    ) -> None:
        """The stage cannot start: its first sub-task is recorded as ERROR with the message
        (the run's other rows, if any were written, CANCELLED), and the message is the run's
        traceback file."""
        message = failure_message(exc)
        logger.error("analysis %s: %s refused: %s", analysis.id, spec.stage, message)
        now = utcnow()
        if not transition(
            session,
            analysis.id,
            analysis.run_number,
            {spec.queued},
            status=spec.error,
            task_finished=now,
        ):
            return  # cancelled meanwhile
        rows = records.subtasks(session, analysis.id, analysis.run_number)
        if rows:  # written by this delivery or an earlier one: the first carries the error
            sub = rows[0]
            cancel_unfinished(session, analysis.id, analysis.run_number, except_id=sub.id)
        else:
            first = spec.before[0]
            sub = SubTask(
                analysis_id=analysis.id,
                run_number=analysis.run_number,
                stage=spec.stage,
                slug=first.slug,
                name=first.name,
                queue_name=keys.CONTROLLER_QUEUE,
                pending_time=now,
                output_log="",
            )
            session.add(sub)
        sub.status = SubTaskStatus.ERROR.value
        sub.start_time = sub.start_time or now
        sub.end_time = now
        sub.error_log = message + "\n"
        root = self.storage.run_dirs(analysis.id, analysis.run_number).root
        root.mkdir(parents=True, exist_ok=True)
        traceback_path = root / "traceback.txt"
        traceback_path.write_text(message + "\n", encoding="utf-8")
        stored = StoredFile(
            path=self.storage.relpath(traceback_path),
            filename=traceback_path.name,
            content_type="text/plain",
            size_bytes=traceback_path.stat().st_size,
        )
        session.add(stored)
        session.flush()
        if spec.stage == LOSSES:
            analysis.run_traceback_file_id = stored.id
        else:
            analysis.input_generation_traceback_file_id = stored.id


#: Refusals whose message already says what is wrong; any other exception is named by type.
EXPECTED_ERRORS = (PlanError, ModelNotFoundError, ModelDirError, RequestError)


def failure_message(exc: BaseException) -> str:
    """The message recorded for a stage that could not be dispatched."""
    if isinstance(exc, EXPECTED_ERRORS):
        return str(exc)
    return f"dispatch failed: {type(exc).__name__}: {exc}"
