"""The scaler's main-task marks: which analysis stages are in progress on each model.

A per-model Redis HASH (``keys.main_tasks``) has one field ``"<analysis id>:<stage>"`` per
stage in progress, valued with the analysis priority; the scaler counts them, so a model
with a queued or running stage keeps a worker even before its first sub-task is on the
queue. A request sets the mark (before the main task is sent); whoever ends the stage
(the last sub-task, a failure, a cancel, a refused dispatch) clears it. Each change is
announced on the model's activity channel so the scaler reacts at once. The controller's
janitor makes the HASH equal to the records again after a crash between a record change
and its mark.
"""

from __future__ import annotations

import redis

from oasis_keda.core import keys


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
