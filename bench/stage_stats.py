"""How much of a stage ran alone: its serial fraction, from its sub-task records.

A stage's busy seconds are the sum of its sub-tasks' durations (start to end, as
recorded). A sub-task runs alone while no other sub-task of the same stage and run is
running; its seconds alone are serial seconds, whatever the step (a step before or after
the chunks, or the last chunk still running after the others ended). The serial fraction
is serial seconds / busy seconds: what a second worker cannot shorten.

``stage_stats(rows)`` takes any records with ``slug``, ``start_time`` and ``end_time``
(:class:`~oasis_keda.core.store.SubTask` rows of one stage and run, say); rows not yet
started or ended are left out. ``stage_stats_of(session, analysis_id, stage)`` reads them
from the records for the analysis's latest run of the stage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from oasis_keda.core.store import SubTask


class Record(Protocol):
    slug: str
    start_time: dt.datetime | None
    end_time: dt.datetime | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageStats:
    busy_s: float
    """Sum of the sub-tasks' durations."""
    serial_s: float
    """Seconds sub-tasks ran while no other sub-task of the stage did."""
    wall_s: float
    """First start to last end."""
    steps_s: dict[str, float]
    """Busy seconds per step (chunks together, under the chunk slug without its index)."""
    alone_s: dict[str, float]
    """Serial seconds per step."""

    @property
    def serial_fraction(self) -> float:
        return self.serial_s / self.busy_s if self.busy_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "serial_fraction": self.serial_fraction}


def _step(slug: str) -> str:
    head, _, tail = slug.rpartition("-")
    return head if head and tail.isdigit() else slug


def stage_stats(rows: Iterable[Record]) -> StageStats:
    """The stage's busy, serial and wall seconds from its sub-task records."""
    spans = [
        (r.start_time, r.end_time, _step(r.slug))
        for r in rows
        if r.start_time is not None and r.end_time is not None and r.end_time >= r.start_time
    ]
    steps: dict[str, float] = {}
    alone: dict[str, float] = {}
    for start, end, step in spans:
        steps[step] = steps.get(step, 0.0) + (end - start).total_seconds()
    # sweep the starts and ends: between two events, the running set is constant
    events = sorted(
        [(start, 1, i) for i, (start, _, _) in enumerate(spans)]
        + [(end, -1, i) for i, (_, end, _) in enumerate(spans)],
        key=lambda e: (e[0], e[1]),  # ends before starts at the same instant
    )
    running: set[int] = set()
    last: dt.datetime | None = None
    serial = 0.0
    for when, kind, i in events:
        if last is not None and len(running) == 1:
            seconds = (when - last).total_seconds()
            (only,) = running
            serial += seconds
            alone[spans[only][2]] = alone.get(spans[only][2], 0.0) + seconds
        if kind == 1:
            running.add(i)
        else:
            running.discard(i)
        last = when
    wall = (
        (max(e for _, e, _ in spans) - min(s for s, _, _ in spans)).total_seconds()
        if spans
        else 0.0
    )
    return StageStats(
        busy_s=round(sum(steps.values()), 6),
        serial_s=round(serial, 6),
        wall_s=round(wall, 6),
        steps_s={k: round(v, 6) for k, v in steps.items()},
        alone_s={k: round(v, 6) for k, v in alone.items()},
    )


def stage_stats_of(session: Session, analysis_id: int, stage: str) -> StageStats:
    """:func:`stage_stats` of the analysis's latest run of ``stage``."""
    rows: Sequence[SubTask] = session.scalars(
        select(SubTask).where(SubTask.analysis_id == analysis_id, SubTask.stage == stage)
    ).all()
    if not rows:
        return stage_stats([])
    latest = max(r.run_number for r in rows)
    return stage_stats([r for r in rows if r.run_number == latest])
