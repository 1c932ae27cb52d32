"""``oasis-keda demo``: the main job end to end on one machine, with nothing but Python.

Starts the stack (:class:`~oasis_keda.runtime.supervisor.Supervisor`, as ``up`` does),
writes the built-in synthetic model, registers it with DYNAMIC_CHUNKS for lookup and losses
and DYNAMIC_TASKS scaling, submits three analyses (generate inputs, then run), shows live
progress (per model desired/actual workers and waiting/running chunks, per analysis a bar
per stage), prints a summary (chunks per stage, peak workers, wall time, AAL per analysis,
sub-tasks lost to scale-down) and writes the sub-task timeline and the workers-over-time
pictures. It ends only once the autoscaler has taken the workers back to 0, then stops
every process.

The parts: :mod:`.common` (settings, result, shared constants), :mod:`.prepare` (the model
on disk, the numba warm-up), :mod:`.driving` (start, register, submit, wait, stop; the
entry point :func:`run_demo`), :mod:`.records` (progress and AAL read back from the
records) and :mod:`.reporting` (the live tables, the summary and its pictures).
"""

from __future__ import annotations

from oasis_keda.runtime.demo.common import (
    AnalysisResult,
    DemoInterruptedError,
    DemoResult,
    DemoSettings,
)
from oasis_keda.runtime.demo.driving import run_demo
from oasis_keda.runtime.demo.reporting import print_summary

__all__ = [
    "AnalysisResult",
    "DemoInterruptedError",
    "DemoResult",
    "DemoSettings",
    "print_summary",
    "run_demo",
]
