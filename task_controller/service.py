"""Requests on analyses (create, generate, run, cancel) and the controller's dispatch of a
stage. The CLI calls these today and the REST API will: every refusal is a
:class:`~task_controller.errors.RequestError` raised before anything is written or queued.

A generate or run request moves the analysis to ``*_QUEUED`` and bumps its run number in one
transaction, marks the main task in progress for the scaler, and sends the main task to the
controller's queue. The controller then plans the chunks, writes the sub-task rows (PENDING)
and sends the stage's canvas to the model's queue.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.core import keys
from oasis_keda.core.config import ChunkingConfig, parse_config
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.main_tasks import clear_main_task, set_main_task
from oasis_keda.core.model_dir import ModelDir, ModelDirError, read_model_dir
from oasis_keda.core.registry import ModelRecord, Registry
from oasis_keda.core.stages import INPUTS, LOSSES, Job, StageSpec, spec_for, stage_of_status
from oasis_keda.core.statuses import IN_PROGRESS, AnalysisStatus, SubTaskStatus
from oasis_keda.core.storage import Storage
from oasis_keda.core.store import Analysis, Portfolio, StoredFile, SubTask, utcnow
from oasis_keda.core.store.transitions import cancel_unfinished, transition
from task_controller import records
from task_controller.canvas import build_canvas, plan_subtasks
from task_controller.chunking import ChunkPlan, PlanError, plan_lookup, plan_losses
from task_controller.errors import RequestError, StatusError
from worker.app import broker_priority

logger = logging.getLogger(__name__)

DISPATCH_TASK = "oasis_keda.controller.dispatch"


@dataclasses.dataclass(kw_only=True)
class Controller:
    """Everything a request or a dispatch needs. Cheap to build; share one per process."""

    sessions: sessionmaker[Session]
    client: redis.Redis
    storage: Storage
    app: Celery

    @property
    def registry(self) -> Registry:
        return Registry(self.client)

    # -- create --------------------------------------------------------------------------

    def create_analysis(
        self,
        name: str,
        *,
        model_id: str,
        location_file: Path,
        accounts_file: Path | None = None,
        settings_file: Path | None = None,
        priority: int = 4,
        chunking: dict[str, Any] | None = None,
    ) -> int:
        """A Portfolio (files copied into storage) and an Analysis in status NEW."""
        self.registry.get(model_id)  # ModelNotFoundError names the model
        if isinstance(priority, bool) or not 1 <= priority <= 10:
            raise RequestError({"priority": f"must be an integer 1-10, got {priority!r}"})
        for field, path in (
            ("locations", location_file),
            ("accounts", accounts_file),
            ("settings", settings_file),
        ):
            if path is not None and not path.is_file():
                raise RequestError({field: f"{path} is not a readable file"})
        settings = _read_settings(settings_file) if settings_file else None
        if chunking is not None:
            try:
                chunking = parse_config(ChunkingConfig, chunking).to_json_dict()
            except ConfigError as exc:
                raise RequestError(exc.fields) from exc
        with self.sessions.begin() as session:
            portfolio = Portfolio(name=name)
            portfolio.location_file_id = records.store_file(
                session, self.storage, location_file, content_type="text/csv"
            ).id
            if accounts_file is not None:
                portfolio.accounts_file_id = records.store_file(
                    session, self.storage, accounts_file, content_type="text/csv"
                ).id
            session.add(portfolio)
            session.flush()
            analysis = Analysis(
                name=name,
                portfolio_id=portfolio.id,
                model_id=model_id,
                priority=priority,
                settings=settings,
                chunking_configuration=chunking,
            )
            if settings_file is not None:
                analysis.settings_file_id = records.store_file(
                    session, self.storage, settings_file, content_type="application/json"
                ).id
            session.add(analysis)
            session.flush()
            return analysis.id

    # -- requests ------------------------------------------------------------------------

    def generate(self, analysis_id: int) -> int:
        return self.request(analysis_id, INPUTS)

    def run(self, analysis_id: int) -> int:
        return self.request(analysis_id, LOSSES)

    def request(
        self, analysis_id: int, stage: str, *, options: dict[str, Any] | None = None
    ) -> int:
        """Queue a stage; returns the new run number. Refusals happen before any write."""
        spec = spec_for(stage)
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            if analysis.status not in spec.allowed_from:
                raise StatusError(analysis.status, spec.allowed_from)
            model = self._model(analysis.model_id)
            if stage == LOSSES:
                self._check_run(session, analysis, model)
            values: dict[str, Any] = {
                "run_number": analysis.run_number + 1,
                "status": spec.queued,
                "task_started": utcnow(),
                "task_finished": None,
            }
            if stage == LOSSES:
                values.update(
                    output_file_id=None,
                    run_traceback_file_id=None,
                    num_events_total=0,
                    num_events_complete=0,
                )
            else:
                values.update(
                    input_file_id=None,
                    lookup_success_file_id=None,
                    lookup_errors_file_id=None,
                    lookup_validation_file_id=None,
                    input_generation_traceback_file_id=None,
                )
            # Compare-and-set: two requests at once queue the stage once.
            if not transition(
                session, analysis_id, analysis.run_number, {analysis.status}, **values
            ):
                current = records.get_analysis(session, analysis_id)
                session.refresh(current)
                raise StatusError(current.status, spec.allowed_from)
            run_number, priority = int(values["run_number"]), analysis.priority
            model_id = model.model_id
        set_main_task(self.client, model_id, analysis_id, stage, priority)
        self.app.send_task(
            DISPATCH_TASK,
            args=(analysis_id, run_number, stage, options or {}),
            queue=keys.CONTROLLER_QUEUE,
            priority=broker_priority(priority),
            ignore_result=True,  # no result wanted: the sender does not subscribe to one
        )
        logger.info("analysis %s: %s requested (run %s)", analysis_id, stage, run_number)
        return run_number

    def _model(self, model_id: str) -> ModelRecord:
        try:
            return self.registry.get(model_id)
        except ModelNotFoundError as exc:
            raise RequestError({"model": str(exc)}) from exc

    def _check_run(self, session: Session, analysis: Analysis, model: ModelRecord) -> None:
        if analysis.input_file_id is None:
            raise RequestError({"input_file": "no input files: generate inputs first"})
        if analysis.settings is None:
            raise RequestError({"settings_file": "the analysis has no analysis settings"})
        model_dir = _model_dir(model)
        events = model_dir.events_for(analysis.settings) if model_dir else None
        try:
            plan_losses(self.chunking(analysis, model), events)
        except PlanError as exc:
            raise RequestError({exc.field: exc.message}) from exc
        wants_il = any(analysis.settings.get(k) for k in ("il_output", "ri_output"))
        if wants_il and analysis.portfolio.accounts_file_id is None:
            raise RequestError(
                {
                    "accounts_file": "the analysis settings ask for insured losses (il_output) "
                    "but the portfolio has no accounts file"
                }
            )
        portfolio = analysis.portfolio
        if analysis.settings.get("ri_output") and (
            portfolio.reinsurance_info_file_id is None
            or portfolio.reinsurance_scope_file_id is None
        ):
            raise RequestError(
                {
                    "ri_output": "the analysis settings ask for reinsurance losses but the "
                    "portfolio has no reinsurance info and scope files"
                }
            )

    def check_can_run_after_generate(self, analysis_id: int) -> None:
        """Refuse generate-and-run at once when the run would be refused later."""
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            model = self._model(analysis.model_id)
            if analysis.settings is None:
                raise RequestError({"settings_file": "the analysis has no analysis settings"})
            try:
                model_dir = _model_dir(model)
                events = model_dir.events_for(analysis.settings) if model_dir else None
                plan_losses(self.chunking(analysis, model), events)
            except PlanError as exc:
                raise RequestError({exc.field: exc.message}) from exc

    def chunking(self, analysis: Analysis, model: ModelRecord) -> ChunkingConfig:
        """The analysis's own chunking configuration if set, else the model's."""
        if analysis.chunking_configuration:
            return parse_config(ChunkingConfig, analysis.chunking_configuration)
        return model.chunking

    def cancel(self, analysis_id: int) -> list[str]:
        """Cancel the stage in progress; queued and running sub-tasks are revoked."""
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            spec = stage_of_status(analysis.status)
            if spec is None:
                raise StatusError(analysis.status, IN_PROGRESS)
            stage = records._main_task_stage(session, analysis, spec)
            if not transition(
                session,
                analysis_id,
                analysis.run_number,
                spec.active,
                status=spec.cancelled,
                task_finished=utcnow(),
            ):
                session.refresh(analysis)
                raise StatusError(analysis.status, spec.active)
            revoke = cancel_unfinished(session, analysis.id, analysis.run_number)
            model_id = analysis.model_id
        clear_main_task(self.client, model_id, analysis_id, stage)
        if revoke:
            self.app.control.revoke(revoke, terminate=True)
        logger.info("analysis %s: cancelled, %d sub-tasks revoked", analysis_id, len(revoke))
        return revoke

    # -- dispatch (controller process) ---------------------------------------------------

    def dispatch(
        self, analysis_id: int, run_number: int, stage: str, options: dict[str, Any]
    ) -> int:
        """Plan the stage and send its canvas. Returns the number of sub-tasks (0: skipped)."""
        spec = spec_for(stage)
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
            except (PlanError, ModelNotFoundError, ModelDirError, RequestError) as exc:
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
                canvas = build_canvas(
                    self.app, spec, job, planned, [r.id for r in rows], priority=analysis.priority
                )
        if failed:
            clear_main_task(self.client, model_id, analysis_id, stage)
            return 0
        canvas.apply_async()
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

    def _job(
        self,
        session: Session,
        analysis: Analysis,
        model: ModelRecord,
        spec: StageSpec,
        options: dict[str, Any],
    ) -> Job:
        dirs = self.storage.run_dirs(analysis.id, analysis.run_number).create()
        model_dir = _model_dir(model)
        settings = analysis.settings
        if settings is None and model_dir is not None:
            # Inputs may be generated before the analysis has settings (Oasis allows it):
            # use the model's own analysis settings, named in its oasislmf.json, if any.
            settings = _default_settings(model_dir)
        settings_file: str | None = None
        if settings is not None:
            path = dirs.root / "analysis_settings.json"
            path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
            settings_file = str(path)
        portfolio = analysis.portfolio
        location = portfolio.location_file
        accounts = portfolio.accounts_file
        input_dir: str | None = None
        if spec.stage == LOSSES and analysis.input_file_id is not None:
            input_file = session.get(StoredFile, analysis.input_file_id)
            if input_file is not None:
                input_dir = str(self.storage.abspath(input_file.path).parent / "inputs")
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
            settings_file=settings_file,
            input_dir=input_dir,
            events=model_dir.events_for(analysis.settings) if model_dir else None,
            options=options,
        )

    def _plan(self, analysis: Analysis, model: ModelRecord, job: Job) -> ChunkPlan:
        config = self.chunking(analysis, model)
        if job["stage"] == LOSSES:
            return plan_losses(config, job["events"])
        if job["stage"] == INPUTS:
            from worker.errors import InputError
            from worker.exposure import count_locations

            if job["location_file"] is None:
                raise PlanError("location_file", "the portfolio has no location file")
            try:
                rows = count_locations(Path(job["location_file"]))
            except InputError as exc:
                raise PlanError("location_file", str(exc)) from exc
            return plan_lookup(config, rows)
        chunks = int(job["options"].get("noop_chunks", 1))
        return ChunkPlan(stage=job["stage"], strategy="FIXED_CHUNKS", chunks=chunks, basis=None)

    def _fail_dispatch(
        self, session: Session, analysis: Analysis, spec: StageSpec, exc: Exception
    ) -> None:
        """The stage cannot start: its first sub-task is recorded as ERROR with the message."""
        message = str(exc)
        logger.error("analysis %s: %s refused: %s", analysis.id, spec.stage, message)
        first = spec.before[0]
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
        sub = SubTask(
            analysis_id=analysis.id,
            run_number=analysis.run_number,
            stage=spec.stage,
            slug=first.slug,
            name=first.name,
            status=SubTaskStatus.ERROR.value,
            queue_name=keys.CONTROLLER_QUEUE,
            pending_time=now,
            start_time=now,
            end_time=now,
            error_log=message + "\n",
            output_log="",
        )
        session.add(sub)
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


def _model_dir(model: ModelRecord) -> ModelDir | None:
    if not model.model_dir:
        return None
    try:
        return read_model_dir(model.model_dir)
    except ModelDirError as exc:
        raise RequestError({"model_dir": str(exc)}) from exc


def _default_settings(model_dir: ModelDir) -> dict[str, Any] | None:
    name = model_dir.config.get("analysis_settings_json")
    if not isinstance(name, str) or not name:
        return None
    path = model_dir.root / name
    return _read_settings(path) if path.is_file() else None


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RequestError({"settings": f"{path} is not readable JSON: {exc}"}) from exc
    if not isinstance(data, dict):
        raise RequestError({"settings": f"{path} must hold a JSON object"})
    return data


def is_final(status: str) -> bool:
    return stage_of_status(status) is None and status != AnalysisStatus.NEW.value
