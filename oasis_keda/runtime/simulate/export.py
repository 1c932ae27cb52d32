"""A workload from the records of past analyses (``oasis-keda analyses export``).

For each analysis, the latest run of each stage whose sub-tasks all have a start and an end
becomes a stage of the workload: its sub-task rows, in dispatch order, become phases (the
chunk rows of the stage one phase, its steps that run side by side one phase, every other
row a phase of its own), each sub-task's
duration its end minus its start. A stage's request time is the earliest ``pending_time``
of its rows; the first stage's is the analysis's arrival (counted from the earliest of all
exported), a later stage's is its gap after the stage before it ended.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.stages import spec_for
from oasis_keda.core.store import Analysis, SubTask
from oasis_keda.runtime.simulate.workload import AnalysisWork, StageWork, Workload

_CHUNK = re.compile(r"^(?P<step>.+)-\d+$")


def _phase_test(stage: str) -> Callable[[str], str | None]:
    """Which queued-together phase a slug belongs to: the stage's chunks, or its steps that
    run side by side; None for a step queued alone."""
    try:
        spec = spec_for(stage)
    except ValueError:  # a stage this process does not know: any ``step-N`` slug
        return lambda slug: "chunks" if _CHUNK.match(slug) is not None else None
    prefix = spec.chunk.slug + "-"

    def phase(slug: str) -> str | None:
        if slug.startswith(prefix) and slug[len(prefix) :].isdigit():
            return "chunks"
        return "side" if slug in spec.side_by_side else None

    return phase


def phases_of(stage: str, rows: Sequence[SubTask]) -> tuple[tuple[float, ...], ...]:
    """The stage's phases from its rows (in dispatch order)."""
    phase_of = _phase_test(stage)
    phases: list[list[float]] = []
    current: str | None = None
    for row in rows:
        assert row.start_time is not None and row.end_time is not None
        duration = max((row.end_time - row.start_time).total_seconds(), 0.0)
        phase = phase_of(row.slug)
        if phase is not None and phase == current:
            phases[-1].append(duration)
        else:
            phases.append([duration])
        current = phase
    return tuple(tuple(round(d, 6) for d in p) for p in phases)


def _stages(rows: Iterable[SubTask]) -> list[tuple[str, list[SubTask]]]:
    """The latest run of each stage, stages in the order they were requested."""
    by_run: dict[tuple[str, int], list[SubTask]] = {}
    for row in rows:
        by_run.setdefault((row.stage, row.run_number), []).append(row)
    latest: dict[str, int] = {}
    for stage, run in by_run:
        latest[stage] = max(latest.get(stage, run), run)
    chosen = [
        (stage, sorted(by_run[(stage, run)], key=lambda r: r.id)) for stage, run in latest.items()
    ]
    return sorted(chosen, key=lambda item: min(r.pending_time for r in item[1]))


def _complete(rows: Sequence[SubTask]) -> bool:
    return all(r.start_time is not None and r.end_time is not None for r in rows)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def measured_timings(stages: Sequence[Sequence[SubTask]]) -> dict[str, float]:
    """Platform timings seen in complete stages' rows (docs/SIMULATOR.md):

    * ``worker_start_s``: from the earliest request to the earliest start (the model is
      taken to be idle before its first exported analysis);
    * ``task_overhead_s``: median idle time of a worker between two sub-tasks when the
      second was already queued as the first ended;
    * ``phase_delay_s``: median time from a phase's last end to the next phase's first
      message reaching the broker, less the task overhead.
    """
    rows = [r for stage in stages for r in stage]
    if not rows:
        return {}
    starts = [r.start_time for r in rows if r.start_time is not None]
    timings = {"worker_start_s": (min(starts) - min(r.pending_time for r in rows)).total_seconds()}
    by_worker: dict[str, list[SubTask]] = {}
    for r in rows:
        by_worker.setdefault(r.worker or "?", []).append(r)
    idle = []
    for runs in by_worker.values():
        runs.sort(key=lambda r: r.start_time or r.pending_time)
        for a, b in itertools.pairwise(runs):
            if a.end_time and b.start_time and b.queue_time and b.queue_time <= a.end_time:
                idle.append((b.start_time - a.end_time).total_seconds())
    overhead = max(_median(idle), 0.0)
    gaps = []
    for stage in stages:
        phase_of = _phase_test(stage[0].stage)
        groups: list[list[SubTask]] = []
        for r in stage:
            phase = phase_of(r.slug)
            if groups and phase is not None and phase == phase_of(groups[-1][-1].slug):
                groups[-1].append(r)
            else:
                groups.append([r])
        for before, after in itertools.pairwise(groups):
            ended = max(r.end_time for r in before if r.end_time is not None)
            queued = [r.queue_time for r in after if r.queue_time is not None]
            if queued:
                gaps.append((min(queued) - ended).total_seconds())
    timings["task_overhead_s"] = round(overhead, 6)
    timings["phase_delay_s"] = round(max(_median(gaps) - overhead, 0.0), 6)
    timings["worker_start_s"] = round(max(timings["worker_start_s"], 0.0), 6)
    return timings


def workload_from_records(
    session: Session,
    *,
    model_id: str | None = None,
    analysis_ids: Sequence[int] | None = None,
    scaling: Mapping[str, ScalingConfig] | None = None,
) -> Workload:
    """The recorded history of the chosen analyses (all by default) as a workload.

    ``scaling`` gives each model's scaling configuration (from the registry); a model
    missing from it gets the defaults. Analyses with no complete stage are left out.
    """
    query = select(Analysis).order_by(Analysis.id)
    if model_id is not None:
        query = query.where(Analysis.model_id == model_id)
    if analysis_ids:
        query = query.where(Analysis.id.in_(list(analysis_ids)))
    found: list[tuple[Analysis, list[tuple[str, list[SubTask]]]]] = []
    for analysis in session.scalars(query):
        subs = session.scalars(select(SubTask).where(SubTask.analysis_id == analysis.id))
        stages = [(s, r) for s, r in _stages(subs) if _complete(r)]
        if stages:
            found.append((analysis, stages))
    if not found:
        return Workload(models=dict(scaling or {}), analyses=())
    timings = measured_timings([rows for _, stages in found for _, rows in stages])
    origin = min(min(r.pending_time for r in stages[0][1]) for _, stages in found)
    analyses = []
    for analysis, stages in found:
        works: list[StageWork] = []
        previous_end: dt.datetime | None = None
        for stage, rows in stages:
            requested = min(r.pending_time for r in rows)
            gap = 0.0 if previous_end is None else (requested - previous_end).total_seconds()
            works.append(StageWork(stage=stage, phases=phases_of(stage, rows), gap_s=max(gap, 0.0)))
            previous_end = max(r.end_time for r in rows if r.end_time is not None)
        analyses.append(
            AnalysisWork(
                analysis_id=analysis.id,
                model_id=analysis.model_id,
                arrival_s=(min(r.pending_time for r in stages[0][1]) - origin).total_seconds(),
                stages=tuple(works),
            )
        )
    models = {a.model_id: (scaling or {}).get(a.model_id, ScalingConfig()) for a in analyses}
    return Workload(models=models, analyses=tuple(analyses), timings=timings)


def recorded_scaling(redis_url: str, model_ids: Iterable[str]) -> dict[str, ScalingConfig]:
    """Each model's scaling configuration from the registry; models it cannot give are
    left out (unregistered, or Redis unreachable)."""
    import redis

    from oasis_keda.core.errors import ModelNotFoundError
    from oasis_keda.core.registry import Registry

    registry = Registry(redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5))
    found: dict[str, ScalingConfig] = {}
    try:
        for model_id in model_ids:
            try:
                found[model_id] = registry.get(model_id).scaling
            except ModelNotFoundError:
                continue
    except redis.RedisError:
        return found
    finally:
        registry.client.close()
    return found


def export_workload(
    database_url: str,
    redis_url: str,
    *,
    model_id: str | None = None,
    analysis_ids: Sequence[int] | None = None,
) -> tuple[Workload, list[str]]:
    """The workload of the records at ``database_url``, scaling from the registry; also
    the models whose scaling could not be read (they get the defaults)."""
    from oasis_keda.core.store import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(database_url))
    with sessions() as session:
        bare = workload_from_records(session, model_id=model_id, analysis_ids=analysis_ids)
    scaling = recorded_scaling(redis_url, sorted(bare.models))
    missing = sorted(set(bare.models) - set(scaling))
    models = {m: scaling.get(m, ScalingConfig()) for m in bare.models}
    return dataclasses.replace(bare, models=models), missing
