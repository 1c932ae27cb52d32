"""The analysis status machine over the records database: every move is a compare-and-set.

A status never changes by a read and a blind write: each move is one conditional UPDATE that
checks the analysis is still on the same run and in one of the expected statuses (and a
sub-task that it is not final yet). So concurrent writers never undo each other: a cancel
that commits first is never turned back into ``*_STARTED`` by a starting sub-task, two
requests at once queue a stage once, and a late or redelivered message of a cancelled,
failed or superseded run never moves the analysis back. The controller (requests, dispatch)
and the workers (their :class:`~worker.recording.Recorder`) both move analyses through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oasis_keda.core.statuses import SUBTASK_FINAL, SubTaskStatus
from oasis_keda.core.store.models import Analysis, SubTask, utcnow


def transition(
    session: Session,
    analysis_id: int,
    run_number: int,
    expected: Iterable[str],
    /,
    **values: Any,
) -> bool:
    """Compare-and-set an analysis: change it only if it is still on ``run_number`` in one
    of the ``expected`` statuses. True if it changed."""
    result = session.execute(
        update(Analysis)
        .where(
            Analysis.id == analysis_id,
            Analysis.run_number == run_number,
            Analysis.status.in_(list(expected)),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def cancel_unfinished(
    session: Session, analysis_id: int, run_number: int, *, except_id: int | None = None
) -> list[str]:
    """Mark the run's unfinished sub-tasks CANCELLED; return their Celery task ids."""
    rows = session.execute(
        select(SubTask.id, SubTask.task_id).where(
            SubTask.analysis_id == analysis_id,
            SubTask.run_number == run_number,
            SubTask.status.not_in(list(SUBTASK_FINAL)),
            SubTask.id != (except_id if except_id is not None else -1),
        )
    ).all()
    if not rows:
        return []
    session.execute(
        update(SubTask)
        .where(SubTask.id.in_([r.id for r in rows]), SubTask.status.not_in(list(SUBTASK_FINAL)))
        .values(status=SubTaskStatus.CANCELLED.value, end_time=utcnow())
        .execution_options(synchronize_session=False)
    )
    return [r.task_id for r in rows if r.task_id]


def cancel_subtask(session: Session, subtask_id: int) -> None:
    """Mark one sub-task CANCELLED unless it is already final."""
    session.execute(
        update(SubTask)
        .where(SubTask.id == subtask_id, SubTask.status.not_in(list(SUBTASK_FINAL)))
        .values(status=SubTaskStatus.CANCELLED.value, end_time=utcnow())
        .execution_options(synchronize_session=False)
    )


def rowcount(result: Any) -> int:
    """Rows an UPDATE changed (0 when the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)
