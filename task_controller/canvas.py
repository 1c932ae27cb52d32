"""The Celery canvas of one stage, built from its chunk plan.

``chain(before..., chord([chunk 1..N], after[0]), after[1:]...)`` on the model's queue, with
the Oasis slugs; steps after the chunks that run side by side are a group there (Celery
makes a group followed by a step a chord). Every signature carries a task id chosen here, so the sub-task rows can be
written (PENDING, with their task ids) before anything reaches the broker, and the analysis
priority (1-10) is given to the broker on every message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from oasis_keda.core.stages import Job, StageSpec
from task_controller.records import PlannedSubTask
from worker.app import broker_priority


def plan_subtasks(spec: StageSpec, chunks: int) -> list[PlannedSubTask]:
    """The sub-tasks of a stage of ``chunks`` chunks, in dispatch order (pure but for ids)."""
    if chunks < 1:
        raise ValueError(f"a stage needs at least one chunk, got {chunks}")
    planned = [
        PlannedSubTask(slug=s.slug, name=s.name, task=s.task, task_id=str(uuid.uuid4()))
        for s in spec.before
    ]
    planned += [
        PlannedSubTask(
            slug=f"{spec.chunk.slug}-{k}",
            name=f"{spec.chunk.name} {k}",
            task=spec.chunk.task,
            task_id=str(uuid.uuid4()),
            chunk_index=k,
        )
        for k in range(1, chunks + 1)
    ]
    planned += [
        PlannedSubTask(slug=s.slug, name=s.name, task=s.task, task_id=str(uuid.uuid4()))
        for s in spec.after
    ]
    return planned


def build_canvas(
    app: Celery,
    spec: StageSpec,
    job: Job,
    planned: Sequence[PlannedSubTask],
    subtask_ids: Sequence[int],
    *,
    priority: int,
    start: int = 0,
) -> Signature:
    """The stage's canvas; ``subtask_ids`` are the record ids of ``planned``, in order.

    ``start`` > 0 leaves out the steps before it (a stage sent again from that step, when
    the broker lost it): at most ``len(spec.before)``, where the canvas is the chord of
    every chunk and the steps after it.
    """
    if not 0 <= start <= len(spec.before):
        raise ValueError(f"start must be 0..{len(spec.before)}, got {start}")
    options = {"queue": job["queue"], "priority": broker_priority(priority)}
    before_n = len(spec.before)
    chunk_n = job["num_chunks"]
    sigs: list[Signature] = []
    for i, (item, sub_id) in enumerate(zip(planned, subtask_ids, strict=True)):
        if i < before_n:
            sig = app.signature(item.task, args=(job, sub_id), immutable=True)
        elif i < before_n + chunk_n:
            sig = app.signature(item.task, args=(job, sub_id, item.chunk_index), immutable=True)
        else:
            # Steps after the chunks take the previous step's result (the chord body gets
            # the list of chunk results) as their first argument.
            sig = app.signature(item.task, args=(job, sub_id))
        sigs.append(sig.set(task_id=item.task_id, **options))
    # The first step is sent from the controller and nobody reads its result: without this
    # a sender outside a worker would subscribe to it on the result backend.
    if start < before_n:
        sigs[start] = sigs[start].set(ignore_result=True)
    before = sigs[start:before_n]
    header = sigs[before_n : before_n + chunk_n]
    after = iter(sigs[before_n + chunk_n :])
    steps: list[Signature] = []
    for members in spec.after_groups():
        sig_group = [next(after) for _ in members]
        steps.append(sig_group[0] if len(sig_group) == 1 else group(sig_group))
    return chain(*before, chord(header, steps[0]), *steps[1:])
