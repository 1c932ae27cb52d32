"""What the simulated platform is like: the autoscaler's timings, how long a worker takes
to start, and the overheads the export measures."""

from __future__ import annotations

import dataclasses

from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimSettings:
    """The simulated platform: the autoscaler's timings and how long a worker takes to start."""

    autoscaler: AutoscalerSettings = dataclasses.field(default_factory=AutoscalerSettings)
    worker_start_s: float = 5.0
    """Seconds from a scale-up to the new worker taking sub-tasks."""
    added_start_s: float | None = None
    """Start time of a worker added while the model already has some (None: the same as
    ``worker_start_s``). Differs on one machine, where a new worker starts on CPUs its
    running siblings share; on a cluster each pod brings its own."""
    record_steps: bool = False
    """Keep every decision (:class:`Step`) in the result."""
    task_overhead_s: float = 0.0
    """Seconds each sub-task holds its worker beyond its recorded duration (taking the
    message, writing its records, acknowledging)."""
    phase_delay_s: float = 0.0
    """Seconds from a phase's last sub-task ending to the next phase being queued (the
    canvas's chain and chord callbacks)."""
    horizon_s: float | None = None
    """Stop the clock here (None: the last arrival plus ten times the workload's work plus
    an hour), so a policy that keeps killing the same sub-task cannot run forever; analyses
    not done by then are reported as not completed."""
