"""What the demo is asked to do (:class:`DemoSettings`) and what it reports
(:class:`DemoResult`), and the constants its parts share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from oasis_keda.runtime.errors import LocalRuntimeError

MODEL_ID = "synth"
FINAL_STATUSES = frozenset(
    {
        "RUN_COMPLETED",
        "RUN_ERROR",
        "RUN_CANCELLED",
        "INPUTS_GENERATION_ERROR",
        "INPUTS_GENERATION_CANCELLED",
        "INPUTS_GENERATION_NO_KEYS",
    }
)
STAGES = ("inputs", "losses")


class DemoInterruptedError(LocalRuntimeError):
    """The demo was stopped before its analyses ended."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """Sizes of the demo (the defaults finish in a few minutes on 2 cores)."""

    out_dir: Path
    """Where the pictures, the model and (by default) the storage go."""
    analyses: int = 3
    locations: int = 400
    events: int = 600
    locations_per_lookup: int = 100
    events_per_chunk: int = 100
    chunks_per_worker: int = 3
    max_workers: int = 4
    count_planned: bool = False
    """Scale on the planned sub-tasks too (the scaling field ``count_planned``)."""
    refresh_s: float = 0.5
    drain_timeout_s: float = 120.0
    """How long to wait, after the last analysis ends, for the workers to reach 0."""
    timeout_s: float = 1200.0


@dataclasses.dataclass
class AnalysisResult:
    analysis_id: int
    name: str
    status: str
    chunks: dict[str, int]
    aal: dict[str, float]


@dataclasses.dataclass
class DemoResult:
    wall_s: float
    peak_workers: int
    analyses: list[AnalysisResult]
    subtasks_per_stage: dict[str, int]
    chunks_per_stage: dict[str, int]
    failed_subtasks: int
    redelivered_subtasks: int
    interrupted_subtasks: int
    """Tasks a worker received and never finished (its process ended mid-chunk)."""
    busy_sigterms: int
    final_workers: int
    timeline_png: Path
    workers_png: Path
    warm_s: float | None = None
    """Seconds spent compiling the numba cache first (None: it was warm)."""
    time_to_peak_s: float | None = None
    """Seconds from the first submission to the first time the workers reached their peak."""
    worker_seconds: float = 0.0
    """Live worker processes integrated over the run (what a cluster pays for)."""
    eta_outcomes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Each settled stage: its ETAs against its actual end (``oasis_keda.core.eta_log``)."""

    @property
    def ok(self) -> bool:
        return (
            all(a.status == "RUN_COMPLETED" for a in self.analyses)
            and self.failed_subtasks == 0
            and self.redelivered_subtasks == 0
            and self.interrupted_subtasks == 0
            and self.final_workers == 0
        )
