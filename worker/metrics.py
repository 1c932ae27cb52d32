"""The workers' Prometheus metrics: how long each step's sub-tasks take, and how they end.

Served by ``oasis-keda worker serve --metrics-port`` from the worker's main process, which
runs its sub-tasks with the default ``--concurrency 1``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

SUBTASK_SECONDS = Histogram(
    "oasis_keda_subtask_seconds",
    "Duration of one sub-task run, by step and outcome (completed, retried, failed)",
    ["step", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RETRIES = Counter("oasis_keda_subtask_retries_total", "Sub-task runs retried", ["step"])
FAILURES = Counter("oasis_keda_subtask_failures_total", "Sub-tasks failed for good", ["step"])
ETA_ERROR = Histogram(
    "oasis_keda_eta_error_seconds",
    "Absolute error of each estimate of a stage's time left, settled when the stage ends",
    ["stage"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)


def observe(task_name: str, outcome: str, seconds: float) -> None:
    """Record one run of a sub-task (``ignored``: skipped because its run was over)."""
    if outcome == "ignored":
        return
    step = task_name.rsplit(".", 1)[-1].replace("_", "-")  # the step's slug
    SUBTASK_SECONDS.labels(step=step, outcome=outcome).observe(seconds)
    if outcome == "retried":
        RETRIES.labels(step=step).inc()
    elif outcome == "failed":
        FAILURES.labels(step=step).inc()


def eta_settled(stage: str, errors_s: Iterable[float]) -> None:
    """A stage ended: how far each estimate of its time left was from the actual."""
    for error in errors_s:
        ETA_ERROR.labels(stage=stage).observe(error)
