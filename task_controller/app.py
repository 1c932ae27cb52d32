"""The task controller process's Celery app: consumes main tasks from ``keys.CONTROLLER_QUEUE``.

Two main tasks: ``oasis_keda.controller.dispatch`` plans one stage of one analysis and sends
its canvas onto the model's queue (:mod:`task_controller.dispatch`); ``request_run``, sent
by a worker when a generate-and-run's inputs are READY, requests the losses stage
(:mod:`task_controller.requests`). The controller process also runs the
:class:`~task_controller.janitor.Janitor`, which calls :func:`reconcile` (the registry cache
rebuilt if Redis lost it, what the broker lost sent again, dead workers' temporary
directories removed, then the main-task marks) and restores the messages of
:func:`janitor_queues`.

:func:`add_dispatch_hook` adds a callable run before each dispatch, in the main task, with
its lease held; production adds none (the test harness's pause, see docs/CONTROLLER.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry, RegistryStore
from oasis_keda.core.registry_store import sync
from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import LOSSES, REQUEST_RUN_TASK
from oasis_keda.core.store import make_engine, make_session_factory
from task_controller import records
from task_controller.dispatch import DISPATCH_TASK, Dispatcher
from task_controller.errors import RequestError
from task_controller.lost_queue import LostQueue
from task_controller.requests import Requests
from task_controller.scratch_cleanup import remove_dead_scratch
from worker.app import WorkerContext, make_app, make_context

logger = logging.getLogger(__name__)

#: Called as ``hook(analysis_id, options)`` before each dispatch.
DispatchHook = Callable[[int, dict[str, Any]], None]
_DISPATCH_HOOKS: list[DispatchHook] = []


def add_dispatch_hook(hook: DispatchHook) -> None:
    """Run ``hook`` before each dispatch of this process's controller tasks."""
    if hook not in _DISPATCH_HOOKS:
        _DISPATCH_HOOKS.append(hook)


def make_dispatcher(settings: Settings, *, context: WorkerContext | None = None) -> Dispatcher:
    """The controller process's Dispatcher, with its own Celery app: the worker tasks are
    registered (for the canvas), and the controller's main tasks."""
    context = context or make_context(settings)
    app = make_app(settings, context=context)
    dispatcher = Dispatcher(
        sessions=make_session_factory(make_engine(settings.effective_database_url)),
        client=context.client,
        storage=context.storage,
        app=app,
    )
    # request_run asks for the losses stage like any other requester, over the same parts.
    requests = Requests(
        sessions=dispatcher.sessions,
        client=dispatcher.client,
        storage=dispatcher.storage,
        app=app,
    )

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
        for hook in _DISPATCH_HOOKS:
            hook(analysis_id, options)
        return dispatcher.dispatch(analysis_id, run_number, stage, options)

    @app.task(  # type: ignore[untyped-decorator]
        name=REQUEST_RUN_TASK,
        shared=False,
        acks_late=True,
        ignore_result=True,
        Request="worker.signals:LeasedRequest",
    )
    def request_run(analysis_id: int) -> int:
        try:
            return requests.request(analysis_id, LOSSES)
        except RequestError as exc:
            # the analysis ends RUN_ERROR with the reason, not READY without a word
            requests.refuse_run(analysis_id, str(exc))
            return 0

    return dispatcher


def sync_registry(dispatcher: Dispatcher) -> None:
    """Make the registry cache in Redis and its copy in the records database equal: after a
    Redis restart that lost them, the models come back from the database."""
    result = sync(dispatcher.client, RegistryStore(dispatcher.sessions))
    if result.rebuilt or result.restored or result.dropped:
        logger.warning(
            "registry cache rebuilt from the records database: %d models restored, "
            "%d removed (Redis had lost them)",
            result.restored,
            result.dropped,
        )
    elif result.saved:
        logger.info("registry: %d models copied into the records database", result.saved)


def reconcile(dispatcher: Dispatcher, lost: LostQueue | None = None) -> None:
    """Make the registry cache whole, then every model's main-task marks equal what the
    records say is in progress; with ``lost``, send again what the broker lost."""
    parts: list[tuple[str, Callable[[], object]]] = [
        ("registry sync", lambda: sync_registry(dispatcher)),
        ("lost queue", lambda: lost.sweep() if lost is not None else None),
        (
            "temporary directories",
            lambda: remove_dead_scratch(dispatcher.client, janitor_queues(dispatcher)),
        ),
    ]
    for name, part in parts:  # one failing part never keeps the others from running
        try:
            part()
        except Exception:
            logger.exception("janitor: %s failed", name)
    model_ids = [m.model_id for m in Registry(dispatcher.client).list()]
    with dispatcher.sessions.begin() as session:
        added, removed = records.reconcile_main_tasks(session, dispatcher.client, model_ids)
        planned = records.reconcile_planned(session, dispatcher.client, model_ids)
    if added or removed:
        logger.info("main tasks reconciled: %d added, %d removed", added, removed)
    if planned:
        logger.info("planned work reconciled: %d field(s) corrected", planned)


def janitor_queues(dispatcher: Dispatcher) -> list[str]:
    """Queues whose abandoned messages the janitor restores: every model's, and its own."""
    return [*(m.queue for m in Registry(dispatcher.client).list()), keys.CONTROLLER_QUEUE]
