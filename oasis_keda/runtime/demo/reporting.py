"""What the demo shows: the live tables while it runs, then the summary (gathered from the
records, the autoscaler and the worker logs), its printout and the two pictures."""

from __future__ import annotations

import itertools
import logging
import os
import tarfile
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from sqlalchemy import select

from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, StoredFile, SubTask
from oasis_keda.runtime.autoscaler import LocalAutoscaler
from oasis_keda.runtime.demo.common import (
    MODEL_ID,
    STAGES,
    AnalysisResult,
    DemoResult,
    DemoSettings,
)
from oasis_keda.runtime.demo.records import is_chunk, read_aal
from oasis_keda.runtime.plots import plot_timeline, plot_workers, spans_from_records
from oasis_keda.runtime.replicas import ScalingSample
from oasis_keda.runtime.supervisor import Supervisor
from oasis_keda.runtime.workers import audit_worker_logs

logger = logging.getLogger(__name__)

# -- live display ---------------------------------------------------------------------------


def _bar(done: int, total: int) -> Any:
    return ProgressBar(total=max(total, 1), completed=done, width=24) if total else "-"


def render(autoscaler: LocalAutoscaler | None, rows: list[dict[str, Any]], elapsed: float) -> Group:
    """The live view: per model desired/actual workers and waiting/running chunks, per
    analysis its status and a bar per stage (``rows`` from
    :func:`~oasis_keda.runtime.demo.records.progress_rows`)."""
    models = Table(title=f"models ({elapsed:.0f} s)", title_justify="left", expand=False)
    for col in ("model", "desired workers", "actual workers", "waiting chunks", "running chunks"):
        models.add_column(col, justify="right" if col != "model" else "left")
    waiting = sum(r["counts"][s][k] for r in rows for s in STAGES for k in ("PENDING", "QUEUED"))
    running = sum(r["counts"][s]["STARTED"] for r in rows for s in STAGES)
    for model_id, model in sorted((autoscaler.models if autoscaler else {}).items()):
        models.add_row(
            model_id, str(model.state.replicas), str(len(model.pool.live)), str(waiting),
            str(running),
        )  # fmt: skip
    table = Table(title="analyses", title_justify="left")
    for col in ("id", "analysis", "status", "inputs", "", "losses", ""):
        table.add_column(col)
    for r in rows:
        cells: list[Any] = [str(r["id"]), r["name"], r["status"]]
        for stage in STAGES:
            c = r["counts"][stage]
            total = sum(c.values())
            cells += [_bar(c["COMPLETED"], total), f"{c['COMPLETED']}/{total}"]
        table.add_row(*cells)
    return Group(models, table)


# -- summary --------------------------------------------------------------------------------


def summarize(
    sup: Supervisor,
    settings: Settings,
    ids: list[int],
    wall_s: float,
    config: DemoSettings,
    *,
    final_workers: int,
    submitted_at: float | None = None,
) -> DemoResult:
    """Gather the result of the run from the records and the autoscaler, and draw the
    sub-task timeline and the workers-over-time pictures under ``config.out_dir``."""
    from oasis_keda.core.store import make_engine, make_session_factory

    autoscaler = sup.autoscaler
    assert autoscaler is not None
    sessions = make_session_factory(make_engine(settings.effective_database_url))
    results = []
    per_stage: Counter[str] = Counter()
    chunks_stage: Counter[str] = Counter()
    failed = redelivered = 0
    with sessions() as session:
        subs = list(session.scalars(select(SubTask).where(SubTask.analysis_id.in_(ids))))
        for sub in subs:
            per_stage[sub.stage] += 1
            chunks_stage[sub.stage] += is_chunk(sub.slug)
            failed += sub.status == "ERROR"
            redelivered += sub.retry_count
        for analysis_id in ids:
            analysis = session.get(Analysis, analysis_id)
            assert analysis is not None
            aal: dict[str, float] = {}
            if analysis.output_file_id is not None:
                stored = session.get(StoredFile, analysis.output_file_id)
                if stored is not None:
                    try:
                        aal = read_aal(settings.storage_dir / stored.path)
                    except (OSError, tarfile.TarError, ValueError) as exc:
                        logger.warning("cannot read AAL of analysis %s: %s", analysis_id, exc)
            results.append(
                AnalysisResult(
                    analysis_id,
                    analysis.name,
                    analysis.status,
                    {
                        "inputs": analysis.lookup_chunks or 0,
                        "losses": analysis.analysis_chunks or 0,
                    },
                    aal,
                )
            )
        spans = spans_from_records(subs)
    timeline = plot_timeline(
        spans,
        config.out_dir / "subtask-timeline.png",
        title=f"Sub-task timeline: {len(ids)} analyses of model {MODEL_ID}",
    )
    workers_png = plot_workers(
        autoscaler.samples,
        spans,
        config.out_dir / "workers-over-time.png",
        title=f"Workers of model {MODEL_ID}: KEDA + HPA against the scaler",
    )
    peak = max((s.actual for s in autoscaler.samples), default=0)
    reached = [s.at for s in autoscaler.samples if peak and s.actual == peak]
    return DemoResult(
        wall_s=wall_s,
        peak_workers=peak,
        time_to_peak_s=(
            reached[0] - submitted_at if reached and submitted_at is not None else None
        ),
        worker_seconds=worker_seconds(autoscaler.samples),
        analyses=results,
        subtasks_per_stage=dict(per_stage),
        chunks_per_stage=dict(chunks_stage),
        failed_subtasks=failed,
        redelivered_subtasks=redelivered,
        # this run's workers only: their logs carry this process's id
        interrupted_subtasks=len(
            audit_worker_logs(sup.run_dir / "workers", f"*-{os.getpid()}.log").unfinished
        ),
        busy_sigterms=sum(m.pool.stopped_busy for m in autoscaler.models.values()),
        final_workers=final_workers,
        timeline_png=timeline,
        workers_png=workers_png,
        eta_outcomes=_eta_outcomes(settings.redis_url),
    )


def _eta_outcomes(redis_url: str) -> list[dict[str, Any]]:
    """How the ETAs made during each stage compared with its end (empty if unreadable)."""
    import redis

    from oasis_keda.core import eta_log

    client = redis.Redis.from_url(redis_url, socket_timeout=5.0)
    try:
        return eta_log.outcomes(client)
    except redis.RedisError as exc:
        logger.warning("cannot read the ETA outcomes: %s", exc)
        return []
    finally:
        client.close()


def worker_seconds(samples: Sequence[ScalingSample]) -> float:
    """Live workers integrated over time, per model, from the autoscaler's samples."""
    total = 0.0
    by_model: dict[str, list[ScalingSample]] = {}
    for sample in samples:
        by_model.setdefault(sample.model_id, []).append(sample)
    for series in by_model.values():
        for a, b in itertools.pairwise(series):
            total += a.actual * max(0.0, b.at - a.at)
    return total


def print_summary(result: DemoResult, console: Console) -> None:
    console.print()
    table = Table(title="summary", title_justify="left")
    table.add_column("analysis")
    table.add_column("status", no_wrap=True)
    table.add_column("lookup chunks", justify="right")
    table.add_column("loss chunks", justify="right")
    table.add_column("AAL (GUL)", justify="right")
    table.add_column("AAL (IL)", justify="right")
    for a in result.analyses:
        table.add_row(
            f"{a.analysis_id} {a.name}",
            a.status,
            str(a.chunks["inputs"]),
            str(a.chunks["losses"]),
            f"{a.aal['gul']:,.0f}" if "gul" in a.aal else "n/a",
            f"{a.aal['il']:,.0f}" if "il" in a.aal else "n/a",
        )
    console.print(table)
    for stage in STAGES:
        console.print(
            f"{stage:7} sub-tasks {result.subtasks_per_stage.get(stage, 0):3}, "
            f"of which chunks {result.chunks_per_stage.get(stage, 0):3}"
        )
    console.print(f"peak workers            {result.peak_workers}")
    if result.time_to_peak_s is not None:
        console.print(f"time to peak            {result.time_to_peak_s:.1f} s (from submission)")
    console.print(f"worker-seconds          {result.worker_seconds:.0f}")
    if result.warm_s is not None:
        console.print(f"numba warm-up           {result.warm_s:.1f} s (first run only)")
    console.print(f"wall time               {result.wall_s:.1f} s (submit -> last analysis done)")
    console.print(f"sub-tasks failed        {result.failed_subtasks}")
    console.print(f"sub-tasks retried       {result.redelivered_subtasks}")
    console.print(
        f"killed by scale-down    {result.interrupted_subtasks} (worker logs: tasks taken, not finished)"
    )
    console.print(f"workers at the end      {result.final_workers} (scaled in by the autoscaler)")
    console.print(f"timeline                {result.timeline_png}")
    console.print(f"workers over time       {result.workers_png}")
