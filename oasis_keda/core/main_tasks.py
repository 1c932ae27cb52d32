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

Beside the marks, the *planned work* (``keys.planned``): when the controller plans a stage it
records the stage's sub-task count before it publishes any of them (and, for a
generate-and-run, the loss stage's expected count); each completed sub-task takes one off;
the stage's end clears it. A model whose scaling counts planned work (``count_planned``)
then sees a stage's whole size at once, and no dip between an analysis's two stages.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import redis

from oasis_keda.core import keys
from oasis_keda.core.stages import INPUTS, LOSSES


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


def clear_main_task(
    client: redis.Redis,
    model_id: str,
    analysis_id: int,
    stage: str,
    *,
    next_stage: str | None = None,
    priority: int = 0,
) -> None:
    """The stage ended (in any way): the scaler stops counting it.

    ``next_stage``: the analysis goes on with that stage (a generate-and-run whose inputs
    are ready): its mark is set in the same step, so the analysis never stops counting
    between its stages, and the work planned for it stays. Without one, the analysis's
    planned work goes too (an error or a cancel ends everything planned for it).
    """
    fields = [planned_field(analysis_id, stage)]
    if next_stage is None:
        fields += [planned_field(analysis_id, s) for s in (INPUTS, LOSSES) if s != stage]
    with client.pipeline() as pipe:
        pipe.hdel(keys.main_tasks(model_id), main_task_field(analysis_id, stage))
        pipe.hdel(keys.planned(model_id), *fields)
        if next_stage is not None:
            pipe.hset(
                keys.main_tasks(model_id),
                main_task_field(analysis_id, next_stage),
                main_task_value(priority),
            )
        pipe.publish(keys.activity_channel(model_id), "main-task")
        pipe.execute()


def planned_field(analysis_id: int, stage: str) -> str:
    return f"{analysis_id}:{stage}"


def set_planned(
    client: redis.Redis, model_id: str, analysis_id: int, counts: Mapping[str, int]
) -> None:
    """Record the sub-tasks planned for the analysis's stages (before any is published)."""
    if not counts:
        return
    with client.pipeline() as pipe:
        pipe.hset(
            keys.planned(model_id),
            mapping={planned_field(analysis_id, s): str(n) for s, n in counts.items()},
        )
        pipe.publish(keys.activity_channel(model_id), "planned")
        pipe.execute()


# KEYS: planned hash. ARGV: field. Decrements a positive count; never below 0, never
# creates a field (a stage already ended keeps no count).
_DONE_LUA = """
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n and n > 0 then return redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 0
"""


def planned_done(client: redis.Redis, model_id: str, analysis_id: int, stage: str) -> None:
    """One planned sub-task of the stage finished."""
    client.eval(_DONE_LUA, 1, keys.planned(model_id), planned_field(analysis_id, stage))
    client.publish(keys.activity_channel(model_id), "planned")
