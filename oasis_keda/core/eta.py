"""How long an analysis's running stage has left: estimated from the sub-task records.

Each step of a stage gets a duration estimate:

* the chunk step, from the chunks of this very run that have completed (same chunk size,
  same machine, same moment), else from the model's history;
* every other step, from the model's history: the durations its earlier runs recorded,
  each scaled by the ratio of this run's size to that run's (location rows for a lookup,
  events and rows for a loss run; per chunk for chunk steps), the median of the latest.

The time left is then the serial steps still to run plus the chunk phase scheduled onto the
analysis's workers (the earliest free worker takes the next chunk; a running sub-task has
its estimate minus its elapsed time left). The workers are the model's live worker
processes, shared among its analyses in proportion to their unfinished sub-tasks, at least
one. A step that has no history yet is taken to last as long as a chunk, and is named in
``unknown``.

:mod:`oasis_keda.core.eta_log` compares the estimates made during a stage with its end.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oasis_keda.core import keys, leases
from oasis_keda.core.main_tasks import planned_field
from oasis_keda.core.stages import INPUTS, LOSSES, StageSpec, spec_for, stage_of_status
from oasis_keda.core.statuses import SUBTASK_FINAL, SubTaskStatus
from oasis_keda.core.store import Analysis, SubTask, utcnow

logger = logging.getLogger(__name__)

#: How many of a step's latest recorded durations its estimate takes the median of.
HISTORY_PER_STEP: Final = 25
#: How many completed sub-tasks of the model the history query reads at most.
HISTORY_ROWS: Final = 2000


#: A run's size along each dimension that drives a step's time (None: unknown).
Dims = dict[str, float | None]


@dataclasses.dataclass(frozen=True)
class Eta:
    """The estimate for one analysis: its running stage and, for a generate-and-run whose
    loss stage is planned, that stage's whole estimate after it."""

    stage: str
    remaining_s: float
    then_s: float | None
    workers: int
    basis: str  # "this run", "model history" or "this run and model history"
    unknown: tuple[str, ...]

    @property
    def total_s(self) -> float:
        return self.remaining_s + (self.then_s or 0.0)

    def as_dict(self) -> dict[str, Any]:
        finish = time.time() + self.total_s
        return {
            "stage": self.stage,
            "stage_remaining_s": round(self.remaining_s, 1),
            "next_stage_s": None if self.then_s is None else round(self.then_s, 1),
            "remaining_s": round(self.total_s, 1),
            "finish_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finish)),
            "workers": self.workers,
            "basis": self.basis,
            "steps_without_history": list(self.unknown),
        }


# -- sizes and history -------------------------------------------------------------------


def _kind(spec: StageSpec, slug: str) -> str:
    """The step a sub-task slug belongs to: chunk slugs ``<chunk>-<k>`` name the chunk step."""
    head, _, tail = slug.rpartition("-")
    return spec.chunk.slug if head == spec.chunk.slug and tail.isdigit() else slug


def _dims(stage: str, kind: str, spec: StageSpec, rows: Any, events: Any, chunks: Any) -> Dims:
    """A run's size for a step: per chunk for the chunk step."""
    per_chunk = kind == spec.chunk.slug
    n = chunks if isinstance(chunks, int) and chunks > 0 else None
    if stage == INPUTS:
        if rows is None or (per_chunk and n is None):
            return {"rows": None}
        return {"rows": rows / n if per_chunk and n else rows}
    if stage == LOSSES:
        ev: float | None = events if isinstance(events, int) and events > 0 else None
        if per_chunk:
            ev = ev / n if ev is not None and n is not None else None
        return {"events": ev, "rows": rows}
    return {}


def _ratio(now: Dims, then: Dims) -> float:
    """How much bigger this run is than a recorded one, along the dimensions both know."""
    ratio = 1.0
    for dim, value in now.items():
        old = then.get(dim)
        if value and old:
            ratio *= float(value) / float(old)
    return ratio


@dataclasses.dataclass(frozen=True)
class _Record:
    kind: str
    seconds: float
    dims: Dims


def _history(session: Session, model_id: str, spec: StageSpec) -> dict[str, list[_Record]]:
    """The model's latest completed sub-tasks of the stage, by step (newest first)."""
    rows = session.execute(
        select(
            SubTask.slug,
            SubTask.start_time,
            SubTask.end_time,
            Analysis.lookup_rows,
            Analysis.num_events_total,
            Analysis.lookup_chunks,
            Analysis.analysis_chunks,
        )
        .join(Analysis, SubTask.analysis_id == Analysis.id)
        .where(
            Analysis.model_id == model_id,
            SubTask.stage == spec.stage,
            SubTask.status == SubTaskStatus.COMPLETED.value,
        )
        .order_by(SubTask.id.desc())
        .limit(HISTORY_ROWS)
    ).all()
    out: dict[str, list[_Record]] = defaultdict(list)
    for slug, start, end, rows_, events, lchunks, achunks in rows:
        kind = _kind(spec, slug)
        if start is None or end is None or len(out[kind]) >= HISTORY_PER_STEP:
            continue
        chunks = lchunks if spec.stage == INPUTS else achunks
        seconds = max((end - start).total_seconds(), 0.0)
        dims = _dims(spec.stage, kind, spec, rows_, events, chunks)
        out[kind].append(_Record(kind, seconds, dims))
    return out


def _step_estimates(
    history: dict[str, list[_Record]], now_dims: dict[str, Dims]
) -> dict[str, float]:
    """Each step's run time: the median of its recorded ones, scaled to this run's size."""
    return {
        kind: statistics.median(r.seconds * _ratio(now_dims[kind], r.dims) for r in recs)
        for kind, recs in history.items()
        if recs and kind in now_dims
    }


# -- scheduling --------------------------------------------------------------------------


def chunk_phase(running: Sequence[float], queued: int, each: float, workers: int) -> float:
    """When the last chunk ends: ``running`` chunks have the given seconds left, ``queued``
    more take ``each`` seconds, and the earliest free of ``workers`` takes the next."""
    free = sorted(running)
    free += [0.0] * max(workers - len(free), 0)
    if not free:
        free = [0.0]
    heapq.heapify(free)
    for _ in range(queued):
        heapq.heappush(free, heapq.heappop(free) + each)
    return max(free)


def _remaining(
    spec: StageSpec,
    subs: Iterable[tuple[str, str, Any]],
    estimates: dict[str, float],
    workers: int,
) -> float:
    """Seconds left for sub-tasks given as (slug, status, start_time)."""
    now = utcnow()
    serial: dict[str, float] = {}
    running: list[float] = []
    queued = 0
    for slug, status, start in subs:
        if status in SUBTASK_FINAL:
            continue
        kind = _kind(spec, slug)
        est = estimates.get(kind, 0.0)
        left = est
        if status == SubTaskStatus.STARTED.value and start is not None:
            left = max(est - (now - start).total_seconds(), 0.0)
        if kind != spec.chunk.slug:
            serial[kind] = serial.get(kind, 0.0) + left
        elif status == SubTaskStatus.STARTED.value:
            running.append(left)
        else:
            queued += 1
    chunk = estimates.get(spec.chunk.slug, 0.0)
    # steps that run side by side share the workers; the others run one after another
    beside = sorted((v for k, v in serial.items() if k in spec.side_by_side), reverse=True)
    alone = sum(v for k, v in serial.items() if k not in spec.side_by_side)
    together = _makespan(beside, workers)
    return alone + together + chunk_phase(running, queued, chunk, workers)


def _makespan(durations: Sequence[float], workers: int) -> float:
    """Sub-tasks of the given durations, all ready, on ``workers``: when the last ends."""
    free = [0.0] * max(min(workers, len(durations)), 1)
    for d in durations:  # longest first, each to the earliest free worker
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


# -- the estimate ------------------------------------------------------------------------


def workers_for(session: Session, client: redis.Redis, analysis: Analysis, queue: str) -> int:
    """The analysis's share of its model's live workers, in proportion to unfinished
    sub-tasks of the model's analyses in progress; at least 1."""
    live = leases.live_count(client, queue)
    if live <= 1:
        return 1
    counts = dict(
        session.execute(
            select(SubTask.analysis_id, func.count())
            .join(Analysis, SubTask.analysis_id == Analysis.id)
            .where(
                Analysis.model_id == analysis.model_id,
                SubTask.run_number == Analysis.run_number,
                SubTask.status.not_in(sorted(SUBTASK_FINAL)),
            )
            .group_by(SubTask.analysis_id)
        ).all()
    )
    mine, everyone = counts.get(analysis.id, 0), sum(counts.values())
    if not everyone:
        return live
    return max(1, round(live * mine / everyone))


def estimate(
    session: Session, client: redis.Redis | None, analysis: Analysis, *, workers: int | None = None
) -> Eta | None:
    """The analysis's ETA, or None when no stage is in progress or its chunk step has
    neither history nor a completed chunk in this run yet. ``workers`` overrides the
    share of live workers (and ``client`` may then be None)."""
    if stage_of_status(analysis.status) is None:
        return None
    every = session.execute(
        select(
            SubTask.stage,
            SubTask.slug,
            SubTask.status,
            SubTask.start_time,
            SubTask.end_time,
            SubTask.queue_name,
        )
        .where(SubTask.analysis_id == analysis.id, SubTask.run_number == analysis.run_number)
        .order_by(SubTask.id)
    ).all()
    if not every:
        return None
    spec = spec_for(every[-1].stage)  # the run's newest stage is the one in progress
    subs = [s for s in every if s.stage == spec.stage]
    if workers is None:
        if client is None:
            raise ValueError("estimate needs a Redis client or a worker count")
        workers = workers_for(session, client, analysis, subs[0].queue_name)
    chunks = sum(1 for s in subs if _kind(spec, s.slug) == spec.chunk.slug)
    events = analysis.num_events_total if spec.stage == LOSSES else None
    kinds = {_kind(spec, s.slug) for s in subs}
    now_dims = {k: _dims(spec.stage, k, spec, analysis.lookup_rows, events, chunks) for k in kinds}
    history = _history(session, analysis.model_id, spec)
    estimates = _step_estimates(history, now_dims)
    this_run = [
        (s.end_time - s.start_time).total_seconds()
        for s in subs
        if _kind(spec, s.slug) == spec.chunk.slug
        and s.status == SubTaskStatus.COMPLETED.value
        and s.start_time is not None
        and s.end_time is not None
    ]
    if this_run:
        estimates[spec.chunk.slug] = statistics.median(this_run)
    if spec.chunk.slug not in estimates:
        return None
    unknown = tuple(sorted(k for k in kinds if k not in estimates))
    for kind in unknown:  # no history yet: about as long as a chunk
        estimates[kind] = estimates[spec.chunk.slug]
    basis = (
        "this run"
        if this_run and len(estimates) == 1
        else "this run and model history"
        if this_run
        else "model history"
    )
    subs_now = ((s.slug, s.status, s.start_time) for s in subs)
    remaining = _remaining(spec, subs_now, estimates, workers)
    then = _next_stage(session, client, analysis, spec, workers)
    return Eta(spec.stage, remaining, then, workers, basis, unknown)


def _next_stage(
    session: Session, client: redis.Redis | None, analysis: Analysis, spec: StageSpec, workers: int
) -> float | None:
    """A generate-and-run's loss stage, planned while its inputs are generated: the whole
    stage from the model's history (None if it is not planned or has no history)."""
    if spec.stage != INPUTS or client is None:
        return None
    raw = client.hget(keys.planned(analysis.model_id), planned_field(analysis.id, LOSSES))
    if raw is None:
        return None
    losses = spec_for(LOSSES)
    chunks = int(raw) - len(losses.before) - len(losses.after)
    if chunks <= 0:
        return None
    slugs = losses.slugs(chunks)
    kinds = {_kind(losses, s) for s in slugs}
    # the event count is set when the loss stage is dispatched: scale by rows only
    now_dims = {k: _dims(LOSSES, k, losses, analysis.lookup_rows, None, chunks) for k in kinds}
    history = _history(session, analysis.model_id, losses)
    estimates = _step_estimates(history, now_dims)
    if losses.chunk.slug not in estimates:
        return None
    queued = SubTaskStatus.PENDING.value
    subs = ((s, queued, None) for s in slugs)
    return _remaining(losses, subs, estimates, workers)


def describe(session: Session, client: redis.Redis, analysis: Analysis) -> dict[str, Any] | None:
    """The ETA as the CLI and the API show it; None when no stage is in progress, nothing
    is known yet, or Redis (the live workers) cannot be read."""
    if stage_of_status(analysis.status) is None:
        return None
    try:
        found = estimate(session, client, analysis)
    except redis.RedisError as exc:
        logger.warning("no ETA for analysis %s: %s", analysis.id, exc)
        return None
    return None if found is None else found.as_dict()


def text(shown: dict[str, Any]) -> str:
    """One line for a person: what :func:`describe` returned."""
    line = f"{shown['stage']} {shown['stage_remaining_s']:.0f} s left"
    if shown["next_stage_s"] is not None:
        line += f", then losses about {shown['next_stage_s']:.0f} s"
    line += (
        f"; done about {shown['finish_at']} on {shown['workers']} worker(s), from {shown['basis']}"
    )
    if shown["steps_without_history"]:
        line += f" (no history yet: {', '.join(shown['steps_without_history'])})"
    return line
