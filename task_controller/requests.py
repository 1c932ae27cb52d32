"""Requests on analyses: create, generate inputs, run losses, cancel. The request side of
the task controller, run by whoever asks (the CLI, the REST API, the controller's own
``request_run`` task for a generate-and-run); the controller process dispatches what they
queue (:mod:`task_controller.dispatch`).

Every refusal is a :class:`~task_controller.errors.RequestError` (``fields``: field ->
message) raised before anything is written or queued. A generate or run request moves the
analysis to ``*_QUEUED`` and bumps its run number in one compare-and-set, marks the main task
in progress for the scaler, and sends the main task to the controller's queue. The
module-level functions at the end serve callers that hold only :class:`Settings` (the REST
API's :mod:`oasis_keda.api.actions`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.core import exposure_files, keys, perspectives
from oasis_keda.core.config import ChunkingConfig, parse_config
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.main_tasks import clear_main_task, set_main_task
from oasis_keda.core.registry import ModelRecord, Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import INPUTS, LOSSES, spec_for, stage_of_status
from oasis_keda.core.statuses import IN_PROGRESS, AnalysisStatus, SubTaskStatus
from oasis_keda.core.storage import Storage
from oasis_keda.core.store import (
    Analysis,
    Portfolio,
    SubTask,
    make_engine,
    make_session_factory,
    utcnow,
)
from oasis_keda.core.store.transitions import cancel_unfinished, transition
from task_controller import records
from task_controller.analysis_config import (
    check_settings,
    chunking_of,
    events_of,
    exposure_formats,
    model_dir_of,
    read_settings,
)
from task_controller.chunking import PlanError, plan_losses
from task_controller.dispatch import DISPATCH_TASK, main_task_id
from task_controller.errors import RequestError, StatusError
from worker.app import WorkerContext, broker_priority, make_app, make_context

logger = logging.getLogger(__name__)

READY = AnalysisStatus.READY.value


@dataclasses.dataclass(kw_only=True)
class Requests:
    """Everything a request needs. Cheap to build; share one per process."""

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
        ri_info_file: Path | None = None,
        ri_scope_file: Path | None = None,
        settings_file: Path | None = None,
        priority: int = 4,
        chunking: dict[str, Any] | None = None,
    ) -> int:
        """A Portfolio (files copied into storage) and an Analysis in status NEW. Exposure
        files are CSV or parquet, told by content, with their required OED columns."""
        self.registry.get(model_id)  # ModelNotFoundError names the model
        if isinstance(priority, bool) or not 1 <= priority <= 10:
            raise RequestError({"priority": f"must be an integer 1-10, got {priority!r}"})
        exposure = {
            "location": location_file,
            "accounts": accounts_file,
            "ri_info": ri_info_file,
            "ri_scope": ri_scope_file,
        }
        if settings_file is not None and not settings_file.is_file():
            raise RequestError({"settings": f"{settings_file} is not a readable file"})
        formats = exposure_formats(exposure)
        settings = None
        if settings_file is not None:
            settings = read_settings(settings_file)
            check_settings(settings_file, settings)
        if chunking is not None:
            try:
                chunking = parse_config(ChunkingConfig, chunking).to_json_dict()
            except ConfigError as exc:
                raise RequestError(exc.fields) from exc
        with self.sessions.begin() as session:
            portfolio = Portfolio(name=name)
            for kind, attr in (
                ("location", "location_file_id"),
                ("accounts", "accounts_file_id"),
                ("ri_info", "reinsurance_info_file_id"),
                ("ri_scope", "reinsurance_scope_file_id"),
            ):
                path = exposure[kind]
                if path is None:
                    continue
                stored = records.store_file(
                    session,
                    self.storage,
                    path,
                    content_type=exposure_files.CONTENT_TYPES[formats[kind]],
                    filename=exposure_files.stored_name(path.name, formats[kind]),
                )
                setattr(portfolio, attr, stored.id)
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
                warnings = self._check_run(session, analysis, model)
            else:
                warnings = self._warnings(session, analysis, check_inputs=False)
            values: dict[str, Any] = {
                "run_number": analysis.run_number + 1,
                "status": spec.queued,
                "task_started": utcnow(),
                "task_finished": None,
                "warnings": warnings or None,
            }
            # A new run of a stage forgets what its previous run produced.
            if stage == LOSSES:
                values.update(
                    output_file_id=None,
                    run_traceback_file_id=None,
                    run_log_file_id=None,
                    num_events_total=0,
                    num_events_complete=0,
                )
            else:
                values.update(
                    input_file_id=None,
                    lookup_success_file_id=None,
                    lookup_errors_file_id=None,
                    lookup_validation_file_id=None,
                    summary_levels_file_id=None,
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
            for warning in warnings:
                logger.warning("analysis %s: %s", analysis_id, warning)
            model_id = model.model_id
            records.write_run_file(
                self.storage.run_dirs(analysis_id, run_number).root,
                records.REQUEST_FILE,
                {"stage": stage, "options": options or {}},
            )
        # Marked before it is sent, so the scaler never sees the main task's work without it.
        set_main_task(self.client, model_id, analysis_id, stage, priority)
        self.app.send_task(
            DISPATCH_TASK,
            args=(analysis_id, run_number, stage, options or {}),
            task_id=main_task_id(analysis_id, run_number),
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

    def _check_run(self, session: Session, analysis: Analysis, model: ModelRecord) -> list[str]:
        if analysis.input_file_id is None:
            raise RequestError({"input_file": "no input files: generate inputs first"})
        if analysis.settings is None:
            raise RequestError({"settings_file": "the analysis has no analysis settings"})
        events = events_of(model_dir_of(model), analysis)
        try:
            plan_losses(chunking_of(analysis, model), events)
        except PlanError as exc:
            raise RequestError({exc.field: exc.message}) from exc
        return self._warnings(session, analysis, check_inputs=True)

    def _warnings(self, session: Session, analysis: Analysis, *, check_inputs: bool) -> list[str]:
        """Warnings for the perspectives the settings ask for that cannot run (oasislmf
        drops them and runs the rest); refused only when nothing is left to run."""
        settings = analysis.settings
        if settings is None:
            return []
        names = None
        if check_inputs and analysis.input_file_id is not None:
            inputs = records.input_dir(session, self.storage, analysis)
            names = sorted(p.name for p in inputs.iterdir()) if inputs.is_dir() else None
        drops = perspectives.dropped(settings, records.portfolio_files(analysis), names)
        if check_inputs and perspectives.runs_nothing(perspectives.without(settings, drops)):
            raise RequestError(
                {
                    "settings_file": "the analysis settings leave no perspective to run: "
                    + "; ".join(d.warning for d in drops)
                }
            )
        return [d.warning for d in drops]

    def check_can_run_after_generate(self, analysis_id: int) -> None:
        """Refuse generate-and-run at once when the run would be refused later."""
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            model = self._model(analysis.model_id)
            if analysis.settings is None:
                raise RequestError({"settings_file": "the analysis has no analysis settings"})
            try:
                events = events_of(model_dir_of(model), analysis)
                plan_losses(chunking_of(analysis, model), events)
            except PlanError as exc:
                raise RequestError({exc.field: exc.message}) from exc

    def refuse_run(self, analysis_id: int, reason: str) -> bool:
        """A generate-and-run whose run step is refused once its inputs are READY: the run
        ends RUN_ERROR at once, the reason in its first sub-task's error log and in the run
        traceback file. False if the analysis is no longer READY (cancelled, rerun)."""
        spec = spec_for(LOSSES)
        first = spec.before[0]
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            if analysis.status != READY:
                return False
            run_number, now = analysis.run_number + 1, utcnow()
            message = f"the run after input generation was refused: {reason}\n"
            traceback_file = records.store_text(
                session, self.storage, analysis_id, run_number, "traceback.txt", message
            )
            if not transition(
                session,
                analysis_id,
                analysis.run_number,
                {READY},
                status=spec.error,
                run_number=run_number,
                task_started=now,
                task_finished=now,
                output_file_id=None,
                run_log_file_id=None,
                run_traceback_file_id=traceback_file.id,
            ):
                return False
            session.add(
                SubTask(
                    analysis_id=analysis_id,
                    run_number=run_number,
                    stage=LOSSES,
                    slug=first.slug,
                    name=first.name,
                    status=SubTaskStatus.ERROR.value,
                    queue_name=keys.CONTROLLER_QUEUE,
                    pending_time=now,
                    start_time=now,
                    end_time=now,
                    error_log=message,
                    output_log="",
                )
            )
        logger.error("analysis %s: %s", analysis_id, message.strip())
        return True

    def cancel(self, analysis_id: int) -> list[str]:
        """Cancel the stage in progress; queued and running sub-tasks are revoked."""
        with self.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            spec = stage_of_status(analysis.status)  # None: no stage in progress
            if spec is None:
                raise StatusError(analysis.status, IN_PROGRESS)
            stage = records.main_task_stage(session, analysis, spec)
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
        # After the commit: a worker that takes a message of this run now finds it over and
        # skips it, so a revoke that arrives late loses nothing.
        clear_main_task(self.client, model_id, analysis_id, stage)
        if revoke:
            self.app.control.revoke(revoke, terminate=True)
        logger.info("analysis %s: cancelled, %d sub-tasks revoked", analysis_id, len(revoke))
        return revoke


def make_requests(settings: Settings, *, context: WorkerContext | None = None) -> Requests:
    """Requests over the records DB, Redis and storage of ``settings``, with a Celery app
    that can send main tasks and revoke sub-tasks."""
    context = context or make_context(settings)
    return Requests(
        sessions=make_session_factory(make_engine(settings.effective_database_url)),
        client=context.client,
        storage=context.storage,
        app=make_app(settings, context=context),
    )


# -- for callers holding only Settings (the REST API) -------------------------------------


@functools.lru_cache(maxsize=4)
def requests_for(settings: Settings) -> Requests:
    """One :class:`Requests` per settings, built on first use."""
    return make_requests(settings)


def generate_inputs(analysis_id: int, *, settings: Settings) -> int:
    """POST generate_inputs: status -> INPUTS_GENERATION_QUEUED; returns the run number."""
    return requests_for(settings).request(analysis_id, INPUTS)


def run(analysis_id: int, *, settings: Settings) -> int:
    """POST run: status -> RUN_QUEUED (DYNAMIC loss chunking without an event count is
    refused here); returns the run number."""
    return requests_for(settings).request(analysis_id, LOSSES)


def generate_and_run(analysis_id: int, *, settings: Settings) -> int:
    """Generate inputs, then run losses as soon as the inputs are READY."""
    requests = requests_for(settings)
    requests.check_can_run_after_generate(analysis_id)
    return requests.request(analysis_id, INPUTS, options={"then_run": True})


def cancel(analysis_id: int, *, settings: Settings) -> list[str]:
    """Cancel the stage in progress: *_CANCELLED, queued and running sub-tasks revoked."""
    return requests_for(settings).cancel(analysis_id)
