"""The task controller's Celery app: consumes main tasks from ``keys.CONTROLLER_QUEUE``.

A main task (``oasis_keda.controller.dispatch``) plans one stage of one analysis and sends
its canvas onto the model's queue (see :mod:`task_controller.service`). The controller
process also runs the :class:`~task_controller.janitor.Janitor`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import LOSSES, REQUEST_RUN_TASK
from oasis_keda.core.store import make_engine, make_session_factory
from task_controller import records
from task_controller.errors import RequestError
from task_controller.service import DISPATCH_TASK, Controller
from worker.app import WorkerContext, make_app, make_context

logger = logging.getLogger(__name__)


def make_controller(settings: Settings, *, context: WorkerContext | None = None) -> Controller:
    """A Controller with its own Celery app (worker tasks registered for the canvas)."""
    context = context or make_context(settings)
    app = make_app(settings, context=context)
    controller = Controller(
        sessions=make_session_factory(make_engine(settings.effective_database_url)),
        client=context.client,
        storage=context.storage,
        app=app,
    )
    app.oasis_controller = controller

    # Main tasks hold leases like sub-tasks (LeasedRequest), so the janitor of another
    # controller replica, or of the next one, can restore those of a dead controller.
    @app.task(  # type: ignore[untyped-decorator]
        name=DISPATCH_TASK,
        shared=False,
        acks_late=True,
        ignore_result=True,
        Request="worker.signals:LeasedRequest",
    )
    def dispatch(analysis_id: int, run_number: int, stage: str, options: dict[str, Any]) -> int:
        pause_s = float(options.get("dispatch_pause_s", 0))
        if pause_s > 0:  # test hook: a controller killed while it holds a main task
            logger.info("dispatch of analysis %s paused %s s (test hook)", analysis_id, pause_s)
            time.sleep(pause_s)
        return controller.dispatch(analysis_id, run_number, stage, options)

    @app.task(  # type: ignore[untyped-decorator]
        name=REQUEST_RUN_TASK,
        shared=False,
        acks_late=True,
        ignore_result=True,
        Request="worker.signals:LeasedRequest",
    )
    def request_run(analysis_id: int) -> int:
        try:
            return controller.request(analysis_id, LOSSES)
        except RequestError as exc:
            logger.error("analysis %s: run after inputs refused: %s", analysis_id, exc)
            return 0

    return controller


def reconcile(controller: Controller) -> None:
    model_ids = [m.model_id for m in Registry(controller.client).list()]
    with controller.sessions.begin() as session:
        added, removed = records.reconcile_main_tasks(session, controller.client, model_ids)
    if added or removed:
        logger.info("main tasks reconciled: %d added, %d removed", added, removed)


def janitor_queues(controller: Controller) -> list[str]:
    """Queues whose abandoned messages the janitor restores: every model's, and its own."""
    return [*(m.queue for m in Registry(controller.client).list()), keys.CONTROLLER_QUEUE]
