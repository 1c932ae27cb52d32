"""Worker-process hooks: busy leases for the scaler, the pod's deletion cost, and QUEUED
records on publish.

Leases are kept by the worker's MAIN process (the one that talks to the broker), so that
whatever runs the task (the main thread of a solo pool, or a prefork child) the scaler
counts a reserved or running sub-task, and a SIGKILLed worker stops counting within one
lease TTL. The hooks: ``task_received`` (reserved), :class:`LeasedRequest` (Celery calls
its ``on_accepted``, ``acknowledge``/``reject``/``on_failure`` in the main process: running,
done), and
``task_revoked``/``task_rejected`` (done). Celery signals are process-global, hence the one
module-level state holder.

The pod deletion cost (high while a task runs, low when idle, so that a scale-in takes idle pods first)
hangs on the same running/done hooks rather than on ``task_prerun``/``task_postrun``: those
run in the pool process, and a SIGKILLed prefork child never sends ``task_postrun``, which
would leave the pod marked busy until the worker restarts; the main process sees that
child's task fail. A task can be settled more than once (``on_failure`` then ``reject``), so
each task id marks the pod busy at most once and idle at most once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals
from celery.worker.request import Request

from oasis_keda.core.leases import LeaseKeeper
from oasis_keda.core.stages import TASK_PREFIX
from worker.deletion_cost import PodDeletionCost
from worker.recording import Recorder

logger = logging.getLogger(__name__)


class _State:
    keeper: LeaseKeeper | None = None
    recorder: Recorder | None = None
    cost: PodDeletionCost | None = None

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.costed: set[str] = set()  # running task ids that marked the pod busy


STATE = _State()


def _keeper() -> LeaseKeeper | None:
    return STATE.keeper


class LeasedRequest(Request):  # type: ignore[misc]
    """A Celery request that tells the lease keeper when its task runs and ends."""

    def on_accepted(self, pid: Any, time_accepted: Any) -> None:
        keeper = _keeper()
        if keeper is not None:
            keeper.task_started(self.id)
        _cost_busy(self.id)
        super().on_accepted(pid, time_accepted)

    # Celery's generated request class overrides on_success without calling up, so "done"
    # hangs on the message's settlement, which every outcome goes through (ack, reject).

    def acknowledge(self) -> None:
        try:
            super().acknowledge()
        finally:
            _done(self.id)

    def reject(self, requeue: bool = False) -> None:
        try:
            super().reject(requeue=requeue)
        finally:
            _done(self.id)

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        try:
            super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        finally:
            _done(self.id)


def _done(task_id: str) -> None:
    keeper = _keeper()
    if keeper is not None:
        keeper.task_done(task_id)
    _cost_idle(task_id)


def _cost_busy(task_id: str) -> None:
    cost = STATE.cost
    if cost is None:
        return
    with STATE.lock:
        if task_id in STATE.costed:
            return
        STATE.costed.add(task_id)
    cost.busy()  # never raises; patches only on the pod's 0 -> 1 transition


def _cost_idle(task_id: str) -> None:
    cost = STATE.cost
    if cost is None:
        return
    with STATE.lock:
        if task_id not in STATE.costed:
            return
        STATE.costed.discard(task_id)
    cost.idle()  # never raises; patches only on the pod's 1 -> 0 transition


def _on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    keeper = _keeper()
    if keeper is not None and request is not None:
        keeper.task_reserved(request.id)


def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    if request is not None:
        _done(request.id)


def _on_rejected(sender: Any = None, message: Any = None, **_: Any) -> None:
    task_id = (getattr(message, "headers", None) or {}).get("id")
    if task_id:
        _done(task_id)


def _on_published(sender: Any = None, headers: Any = None, **_: Any) -> None:
    """A sub-task's message reached the broker: PENDING -> QUEUED (any publishing process)."""
    recorder = STATE.recorder
    if recorder is None or not isinstance(sender, str) or not sender.startswith(TASK_PREFIX):
        return
    task_id = (headers or {}).get("id")
    if task_id:
        try:
            recorder.mark_queued(task_id)
        except Exception:  # a record write must never fail the publish
            logger.exception("could not mark sub-task %s QUEUED", task_id)


def install(
    *,
    recorder: Recorder | None,
    keeper: LeaseKeeper | None = None,
    cost: PodDeletionCost | None = None,
) -> None:
    """Activate the hooks in this process.

    ``cost``: the pod's deletion-cost marker (off outside a cluster); it is reset here, in
    the main process before the pool starts, so a count left by a killed worker is cleared.
    """
    STATE.recorder = recorder
    STATE.keeper = keeper
    STATE.cost = cost
    if cost is not None:
        cost.reset()
    signals.task_received.connect(_on_received, weak=False)
    signals.task_revoked.connect(_on_revoked, weak=False)
    signals.task_rejected.connect(_on_rejected, weak=False)
    signals.after_task_publish.connect(_on_published, weak=False)
