"""The worker-log audit behind "sub-tasks killed by scale-down" (runtime.workers).

Covers: a task received and finished (succeeded, raised, retry) is not counted; a task
discarded as revoked is not counted; a task received by a worker that ended before
finishing it is reported with its log; ``pattern`` limits the audit to one run's logs.
"""

from __future__ import annotations

from pathlib import Path

from oasis_keda.runtime.workers import audit_worker_logs

T1 = "0f1e2d3c-0000-4000-8000-000000000001"
T2 = "0f1e2d3c-0000-4000-8000-000000000002"
T3 = "0f1e2d3c-0000-4000-8000-000000000003"
T4 = "0f1e2d3c-0000-4000-8000-000000000004"


def line(task: str, event: str) -> str:
    return (
        f"2026-01-01 00:00:00,000 INFO celery.app.trace: Task oasis_keda.worker.x[{task}] {event}"
    )


def test_audit_counts_unfinished_tasks_per_log(tmp_path: Path) -> None:
    (tmp_path / "worker-m-1-100.log").write_text(
        "\n".join(
            [
                line(T1, "received"),
                line(T1, "succeeded in 0.1s: None"),
                line(T2, "received"),
                f"INFO celery.worker.request: Discarding revoked task: oasis_keda.worker.x[{T2}]",
                line(T3, "received"),
                line(T3, "raised unexpected: ValueError()"),
            ]
        )
    )
    (tmp_path / "worker-m-2-100.log").write_text(line(T4, "received") + "\nworker: Warm shutdown")
    (tmp_path / "worker-m-1-999.log").write_text(line(T1, "received"))
    audit = audit_worker_logs(tmp_path, "*-100.log")
    assert (audit.received, audit.finished) == (4, 3)
    assert audit.unfinished == (f"worker-m-2-100:{T4}",)
    assert len(audit_worker_logs(tmp_path).unfinished) == 2


def test_audit_of_no_logs_is_empty(tmp_path: Path) -> None:
    audit = audit_worker_logs(tmp_path)
    assert (audit.received, audit.finished, audit.unfinished) == (0, 0, ())
