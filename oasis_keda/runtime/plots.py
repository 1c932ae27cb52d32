"""The demo's two pictures, drawn with matplotlib's Agg backend (no display needed).

* :func:`plot_timeline`: one horizontal bar per sub-task from its start to its end, one row
  per worker, coloured by kind of step (lookup chunk, loss chunk, merge...), as Oasis's
  ``plot_subtasks`` shows an analysis;
* :func:`plot_workers`: desired and actual workers over time (step lines) against the
  sub-tasks outstanding (queued or running) on a second axis.

Inputs are plain dataclasses (:class:`Span`, :class:`ScalingSample`), so tests draw from
synthetic records; :func:`spans_from_records` adapts the store's ``SubTask`` rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from oasis_keda.runtime.autoscaler import ScalingSample

#: Mid-tone colours (matplotlib's tab10), one per kind of step: dark hatching (one pattern
#: per analysis) stays visible on every one of them.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_CHUNK_SUFFIX = re.compile(r"[-_ ]?\d+([-_/ ]?(of[-_ ]?)?\d+)?$")


@dataclasses.dataclass(frozen=True)
class Span:
    """One sub-task as the pictures need it (times as naive UTC datetimes)."""

    analysis_id: int
    stage: str
    kind: str
    """The step with its chunk number removed, e.g. ``generate-losses-chunk``."""
    worker: str
    queued: dt.datetime | None
    start: dt.datetime | None
    end: dt.datetime | None
    status: str


class _SubTaskLike(Protocol):
    analysis_id: int
    stage: str
    slug: str
    name: str
    worker: str | None
    pending_time: dt.datetime
    queue_time: dt.datetime | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    status: str


def step_kind(slug: str) -> str:
    """A sub-task's slug without its chunk numbers: the colour key of the timeline."""
    kind = _CHUNK_SUFFIX.sub("", slug.strip())
    return kind or slug


def spans_from_records(records: Iterable[_SubTaskLike]) -> list[Span]:
    """Spans from ``SubTask`` records (any object with the same attributes)."""
    return [
        Span(
            analysis_id=r.analysis_id,
            stage=r.stage,
            kind=step_kind(r.slug or r.name),
            worker=r.worker or "",
            queued=r.queue_time or r.pending_time,
            start=r.start_time,
            end=r.end_time,
            status=r.status,
        )
        for r in records
    ]


def short_worker(node: str) -> str:
    """``model.1234@host`` -> ``pid 1234``; other names as given, cut to 24 characters."""
    head = node.split("@", 1)[0]
    pid = head.rsplit(".", 1)[-1]
    if pid.isdigit():
        return f"pid {pid}"
    return head[:24] or "?"


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(str(out), dpi=110)
    return out


def plot_timeline(spans: Sequence[Span], out: Path, *, title: str = "Sub-task timeline") -> Path:
    """One bar per sub-task that ran, one row per worker, coloured by kind of step."""
    ran = [s for s in spans if s.start is not None and s.end is not None and s.worker]
    if not ran:
        raise ValueError("no sub-task with a worker, a start and an end time to draw")
    t0 = min(s.start for s in ran if s.start is not None)
    workers = sorted(
        {s.worker for s in ran},
        key=lambda w: min(s.start for s in ran if s.worker == w and s.start is not None),
    )
    kinds = sorted(
        {s.kind for s in ran},
        key=lambda k: min(s.start for s in ran if s.kind == k and s.start is not None),
    )
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}
    analyses = sorted({s.analysis_id for s in ran})
    hatch = {a: ("", "//", "..", "xx", "\\\\", "++")[i % 6] for i, a in enumerate(analyses)}

    height = max(2.8, 0.45 * len(workers) + 1.8)
    fig = Figure(figsize=(11, height))
    ax = fig.add_subplot()
    for s in ran:
        assert s.start is not None and s.end is not None
        left = (s.start - t0).total_seconds()
        width = max((s.end - s.start).total_seconds(), 0.05)
        ax.barh(
            workers.index(s.worker),
            width,
            left=left,
            height=0.7,
            color=colour[s.kind],
            hatch=hatch[s.analysis_id],
            edgecolor="#222222",
            linewidth=0.3,
        )
    ax.set_yticks(range(len(workers)), [short_worker(w) for w in workers])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first sub-task started")
    ax.set_ylabel("worker")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles: list[Any] = [Patch(facecolor=colour[k], label=k) for k in kinds]
    if len(analyses) > 1:
        handles += [
            Patch(facecolor="white", edgecolor="#333333", hatch=hatch[a], label=f"analysis {a}")
            for a in analyses
        ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        frameon=False,
        title="step / analysis",
    )
    fig.tight_layout()
    return _save(fig, out)


def outstanding_at(spans: Sequence[Span], t: dt.datetime) -> int:
    """Sub-tasks queued or running at ``t`` (queued <= t < end)."""
    return sum(
        1 for s in spans if s.queued is not None and s.queued <= t and (s.end is None or t < s.end)
    )


def plot_workers(
    samples: Sequence[ScalingSample],
    spans: Sequence[Span],
    out: Path,
    *,
    title: str = "Workers over time",
) -> Path:
    """Desired and actual workers (step lines) against outstanding sub-tasks."""
    if not samples:
        raise ValueError("no autoscaler samples to draw")
    t0 = min(s.at for s in samples)
    xs = [s.at - t0 for s in samples]
    fig = Figure(figsize=(11, 4.2))
    ax = fig.add_subplot()
    desired = ax.step(
        xs,
        [s.desired for s in samples],
        where="post",
        color="#0072B2",
        lw=2,
        label="desired workers",
    )
    actual = ax.step(
        xs,
        [s.actual for s in samples],
        where="post",
        color="#D55E00",
        lw=1.5,
        ls="--",
        label="actual worker processes",
    )
    ax.set_xlabel("seconds since the stack started")
    ax.set_ylabel("workers")
    top = max(max(s.desired for s in samples), max(s.actual for s in samples), 1)
    ax.set_ylim(0, top + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    lines: list[Any] = [*desired, *actual]
    if spans:
        start = dt.datetime.fromtimestamp(t0, dt.UTC).replace(tzinfo=None)
        counts = [outstanding_at(spans, start + dt.timedelta(seconds=x)) for x in xs]
        ax2 = ax.twinx()
        filled = ax2.fill_between(
            xs, counts, step="post", color="#009E73", alpha=0.25, label="outstanding sub-tasks"
        )
        ax2.set_ylabel("outstanding sub-tasks")
        ax2.set_ylim(0, max(max(counts), 1) * 1.15)
        ax.set_zorder(ax2.get_zorder() + 1)  # worker lines above the shaded backlog
        ax.patch.set_visible(False)
        lines.append(filled)
    ax.legend(handles=lines, loc="upper right", fontsize="small")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out)
