"""What one simulated run reports, and the table and picture that compare runs."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.table import Table

from oasis_keda.runtime.plots import PALETTE


@dataclasses.dataclass(frozen=True, kw_only=True)
class Step:
    """One decision: what the policy saw, asked and got."""

    at: float
    model_id: str
    source: str
    """``poll`` (a polling interval) or ``push`` (a pushed activation)."""
    waiting: int
    busy: int
    main_tasks: int
    live: int
    wanted: int
    """The policy's own answer (ours: the scaler's, before the global budget)."""
    metric: float
    """The metric served to KEDA (ours: desired workers; list-length: waiting messages)."""
    replicas: int
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimResult:
    """The outcome of one configuration on one workload (times in simulated seconds)."""

    name: str
    policy: str
    analyses: int
    completed: int
    worker_seconds: float
    """Worker processes alive (starting, working, idle or draining), integrated over time."""
    makespan_s: float
    """From the first arrival to the last analysis's end."""
    latency_p50_s: float
    latency_p95_s: float
    """Analysis latency: from its first stage's request to its last stage's end."""
    scale_ups: int
    scale_downs: int
    """Changes of the replica count, up and down."""
    killed_tasks: int
    killed_work_s: float
    """Sub-tasks killed at the end of a grace period, and the seconds of work they lost."""
    peak_workers: int
    series: tuple[tuple[float, int], ...] = ()
    """``(time, workers alive)`` at every change."""
    steps: tuple[Step, ...] = ()

    def summary(self) -> dict[str, Any]:
        """The figures, without the series (for ``--json`` and the results file)."""
        data = dataclasses.asdict(self)
        data.pop("series")
        data.pop("steps")
        return data

    def workers_at(self, t: float) -> int:
        """Workers alive at ``t``."""
        count = 0
        for at, alive in self.series:
            if at > t:
                break
            count = alive
        return count


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``nan`` for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def table(results: Sequence[SimResult], title: str = "What-if simulation") -> Table:
    """The comparison as a rich table, one row per configuration."""
    out = Table(title=title)
    for column in (
        "configuration",
        "policy",
        "worker-s",
        "makespan s",
        "p50 s",
        "p95 s",
        "ups",
        "downs",
        "peak",
        "killed (work s)",
    ):
        out.add_column(column, justify="left" if column in ("configuration", "policy") else "right")
    for r in results:
        out.add_row(
            r.name,
            r.policy,
            f"{r.worker_seconds:.0f}",
            f"{r.makespan_s:.1f}",
            f"{r.latency_p50_s:.1f}",
            f"{r.latency_p95_s:.1f}",
            str(r.scale_ups),
            str(r.scale_downs),
            str(r.peak_workers),
            f"{r.killed_tasks} ({r.killed_work_s:.0f})",
        )
    return out


def markdown(results: Sequence[SimResult]) -> str:
    """The same comparison as a markdown table."""
    lines = [
        (
            "| configuration | policy | worker-s | makespan s | p50 s | p95 s | ups | downs "
            "| peak | killed (work s) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.policy} | {r.worker_seconds:.0f} | {r.makespan_s:.1f} "
            f"| {r.latency_p50_s:.1f} | {r.latency_p95_s:.1f} | {r.scale_ups} | {r.scale_downs} "
            f"| {r.peak_workers} | {r.killed_tasks} ({r.killed_work_s:.0f}) |"
        )
    return "\n".join(lines)


def write_json(results: Sequence[SimResult], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.summary() for r in results], indent=2) + "\n")
    return path


def plot(results: Sequence[SimResult], out: Path, *, title: str = "What-if simulation") -> Path:
    """Workers alive over time per configuration (left), worker-seconds and p95 (right)."""
    if not results:
        raise ValueError("no results to draw")
    fig = Figure(figsize=(12, 4.6 + 0.25 * len(results)))
    ax = fig.add_subplot(1, 3, (1, 2))
    for i, r in enumerate(results):
        xs = [t for t, _ in r.series]
        ys = [n for _, n in r.series]
        ax.step(xs, ys, where="post", color=PALETTE[i % len(PALETTE)], lw=1.6, label=r.name)
    ax.set_xlabel("simulated seconds")
    ax.set_ylabel("worker processes alive")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(
        loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2, fontsize="small", frameon=False
    )
    ax.set_title(title)
    bars = fig.add_subplot(1, 3, 3)
    positions = range(len(results))
    bars.barh(
        list(positions),
        [r.worker_seconds for r in results],
        color=[PALETTE[i % len(PALETTE)] for i in positions],
    )
    bars.set_yticks(list(positions), [f"{r.name}\np95 {r.latency_p95_s:.0f} s" for r in results])
    bars.invert_yaxis()
    bars.set_xlabel("worker-seconds")
    bars.grid(axis="x", alpha=0.3)
    bars.tick_params(axis="y", labelsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(str(out), dpi=110)
    return out
