"""The scaler's main-task marks: which analysis stages are in progress on each model.

A per-model Redis HASH (``keys.main_tasks``) has one field ``"<analysis id>:<stage>"`` per
stage in progress, valued ``"<priority>:<requested ms>"``; the scaler counts them, takes
the highest priority, and breaks ties in the global budget by the oldest request, so a model
with a queued or running stage keeps a worker even before its first sub-task is on the
queue. A request sets the mark (before the main task is sent); whoever ends the stage
(the last sub-task, a failure, a cancel, a refused dispatch) clears it. Each change is
announced on the model's activity channel so the scaler reacts at once. The controller's
janitor makes the HASH equal to the records again after a crash between a record change
and its mark.
"""

from __future__ import annotations

import time

import redis

from oasis_keda.core import keys


def main_task_value(priority: int, requested_ms: int | None = None) -> str:
    """The stored value of a main task: its priority and when it was requested."""
    when = int(time.time() * 1000) if requested_ms is None else requested_ms
    return f"{priority}:{when}"


def parse_main_task_value(raw: str | bytes) -> tuple[int, int]:
    """(priority, requested ms) of a stored value; (0, 0) for one that cannot be read."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    head, _, tail = text.partition(":")
    try:
        return int(head), int(tail or 0)
    except ValueError:
        return 0, 0


def main_task_field(analysis_id: int, stage: str) -> str:
    return f"{analysis_id}:{stage}"


def set_main_task(
    client: redis.Redis, model_id: str, analysis_id: int, stage: str, priority: int
) -> None:
    """Mark a main task in progress for the scaler, and wake it."""
    with client.pipeline() as pipe:
        pipe.hset(
            keys.main_tasks(model_id),
            main_task_field(analysis_id, stage),
            main_task_value(priority),
        )
        pipe.publish(keys.activity_channel(model_id), "main-task")
        pipe.execute()


def clear_main_task(client: redis.Redis, model_id: str, analysis_id: int, stage: str) -> None:
    """The stage ended (in any way): the scaler stops counting it."""
    with client.pipeline() as pipe:
        pipe.hdel(keys.main_tasks(model_id), main_task_field(analysis_id, stage))
        pipe.publish(keys.activity_channel(model_id), "main-task")
        pipe.execute()
