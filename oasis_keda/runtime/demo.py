"""``oasis-keda demo``: the main job end to end on one machine, with nothing but Python.

Starts the stack (:class:`~oasis_keda.runtime.supervisor.Supervisor`, as ``up`` does),
writes the built-in synthetic model, registers it with DYNAMIC_CHUNKS for lookup and losses
and DYNAMIC_TASKS scaling, submits three analyses (generate inputs, then run), shows live
progress (per model desired/actual workers and waiting/running chunks, per analysis a bar
per stage), prints a summary (chunks per stage, peak workers, wall time, AAL per analysis,
sub-tasks lost to scale-down) and writes the sub-task timeline and the workers-over-time
pictures. It ends only once the autoscaler has taken the workers back to 0, then stops
every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, StoredFile, SubTask
from oasis_keda.runtime.autoscaler import AutoscalerSettings, LocalAutoscaler
from oasis_keda.runtime.errors import LocalRuntimeError
from oasis_keda.runtime.plots import plot_timeline, plot_workers, spans_from_records
from oasis_keda.runtime.supervisor import Supervisor, SupervisorSettings
from oasis_keda.runtime.workers import audit_worker_logs

logger = logging.getLogger(__name__)

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
#: File in the numba cache directory saying the demo's warm-up run filled it.
WARM_MARKER = ".oasis-keda-warm"
WARM_TIMEOUT_S = 1800.0
_PALT = re.compile(r"(?:^|/)(\w+?)_S1_palt\.csv$")


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

    @property
    def ok(self) -> bool:
        return (
            all(a.status == "RUN_COMPLETED" for a in self.analyses)
            and self.failed_subtasks == 0
            and self.redelivered_subtasks == 0
            and self.interrupted_subtasks == 0
            and self.final_workers == 0
        )


# -- records --------------------------------------------------------------------------------


def _is_chunk(slug: str) -> bool:
    return bool(re.search(r"-\d+$", slug))


def progress_rows(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """Per analysis: status, and per stage (done, total) sub-tasks."""
    rows = []
    for analysis_id in ids:
        analysis = session.get(Analysis, analysis_id)
        assert analysis is not None
        counts: dict[str, Counter[str]] = {stage: Counter() for stage in STAGES}
        for sub in session.scalars(select(SubTask).where(SubTask.analysis_id == analysis_id)):
            counts.setdefault(sub.stage, Counter())[sub.status] += 1
        rows.append({"id": analysis_id, "name": analysis.name, "status": analysis.status,
                     "counts": counts})  # fmt: skip
    return rows


def read_aal(archive: Path) -> dict[str, float]:
    """AAL per perspective (gul, il, ...) from an outputs archive's ORD ALT files.

    The sample mean (SampleType 2) when present, else the analytical mean (SampleType 1),
    summed over the summary ids of summary set 1.
    """
    result: dict[str, float] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            match = _PALT.search(member.name)
            extracted = tar.extractfile(member) if match else None
            if match is None or extracted is None:
                continue
            by_type: dict[str, float] = {}
            for row in csv.DictReader(io.TextIOWrapper(extracted)):
                kind = row.get("SampleType", "")
                by_type[kind] = by_type.get(kind, 0.0) + float(row.get("MeanLoss") or 0)
            result[match.group(1)] = by_type.get("2", by_type.get("1", 0.0))
    return result


# -- display --------------------------------------------------------------------------------


def _bar(done: int, total: int) -> Any:
    return ProgressBar(total=max(total, 1), completed=done, width=24) if total else "-"


def render(autoscaler: LocalAutoscaler | None, rows: list[dict[str, Any]], elapsed: float) -> Group:
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


# -- the run --------------------------------------------------------------------------------


def write_model(config: DemoSettings) -> Path:
    """Write the synthetic model under the output directory."""
    from oasis_keda.runtime.synth import write_synthetic_model

    model_dir = config.out_dir / "synth-model"
    write_synthetic_model(model_dir, locations=config.locations, events=config.events, seed=1)
    return model_dir


def warm_numba_cache(model_dir: Path, env: dict[str, str], console: Console) -> float | None:
    """Compile oasislmf's numba tools once, before any worker runs (first run only).

    Several workers meeting a cold cache each compile the same tools at the same time,
    which on a small machine costs several times one compile. One ``oasislmf model run`` of
    the synthetic model (as the container build does) fills the cache the workers read
    (``NUMBA_CACHE_DIR``, else ``~/.cache/oasis-keda/numba``). Returns the seconds spent, or
    None when the cache was already warm.
    """
    from worker.oasis_env import NUMBA_CACHE_ENV, numba_cache_dir

    cache = numba_cache_dir(env)
    marker = cache / WARM_MARKER
    if marker.exists():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    console.print(
        f"first run: compiling oasislmf's numba tools once into {cache} (a few minutes) ..."
    )
    started = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="oasis-keda-warm-"))
    bin_dir = Path(sys.executable).parent  # the pipeline tools (gulmc, fmpy, ...) live here
    oasislmf = bin_dir / "oasislmf"
    argv = [str(oasislmf)] if oasislmf.exists() else [sys.executable, "-m", "oasislmf"]
    log = run_dir / "warm.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*argv, "model", "run", "--config", str(model_dir / "oasislmf.json"),
                 "--model-run-dir", str(run_dir / "run"),
                 # one process per tool: parallel copies would each compile the same code
                 "--kernel-num-processes", "1", "--lookup-num-processes", "1"],
                env={**env, NUMBA_CACHE_ENV: str(cache),
                     "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"},
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pipeline shells and tools die with it
            )  # fmt: skip
            try:
                returncode = proc.wait(timeout=WARM_TIMEOUT_S)
            except BaseException:  # timeout, Ctrl-C: leave no pipeline behind
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        output = log.read_text(errors="replace")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if returncode != 0:
        tail = output.splitlines()[-15:]
        raise LocalRuntimeError("warming the numba cache failed:\n" + "\n".join(tail))
    marker.write_text("warmed by oasis-keda demo\n")
    return time.monotonic() - started


def register_model(client: Any, config: DemoSettings, model_dir: Path) -> None:
    """Register the synthetic model: DYNAMIC_CHUNKS for both stages, DYNAMIC_TASKS scaling."""
    registry = Registry(client)
    registry.register(
        MODEL_ID,
        model_dir=str(model_dir.resolve()),
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
    )
    registry.set_chunking(
        MODEL_ID,
        {
            "lookup_strategy": "DYNAMIC_CHUNKS",
            "loss_strategy": "DYNAMIC_CHUNKS",
            "dynamic_locations_per_lookup": config.locations_per_lookup,
            "dynamic_events_per_analysis": config.events_per_chunk,
        },
    )
    registry.set_scaling(
        MODEL_ID,
        {
            "scaling_strategy": "DYNAMIC_TASKS",
            "chunks_per_worker": config.chunks_per_worker,
            "worker_count_max": config.max_workers,
            "worker_count_min": 0,
        },
    )


async def _drive(
    sup: Supervisor,
    config: DemoSettings,
    settings: Settings,
    console: Console,
    stop: asyncio.Event,
    model_dir: Path,
) -> tuple[list[int], float, int]:
    """Submit the analyses and show progress until they end and the workers reach 0.

    Returns the analysis ids, the wall time (submit -> last analysis final) and the worker
    processes still alive when the display stopped (0 once the autoscaler scaled in).
    """
    from rich.live import Live

    from task_controller.requests import make_requests as make_controller

    assert sup.client is not None
    await asyncio.to_thread(register_model, sup.client, config, model_dir)
    controller = make_controller(settings)
    ids = []
    started = time.monotonic()
    for k in range(1, config.analyses + 1):
        analysis_id = controller.create_analysis(
            f"demo-{k}",
            model_id=MODEL_ID,
            location_file=model_dir / "location.csv",
            accounts_file=model_dir / "account.csv",
            settings_file=model_dir / "analysis_settings.json",
        )
        controller.request(analysis_id, "inputs", options={"then_run": True})
        ids.append(analysis_id)
    done_at: float | None = None
    workers = 0
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            with controller.sessions() as session:
                rows = progress_rows(session, ids)
            live.update(render(sup.autoscaler, rows, time.monotonic() - started))
            if done_at is None and all(r["status"] in FINAL_STATUSES for r in rows):
                done_at = time.monotonic()
            if sup.autoscaler is not None:
                sup.autoscaler.track_processes()
            workers = sup.autoscaler.live_workers() if sup.autoscaler else 0
            if done_at is not None and (
                workers == 0 or time.monotonic() - done_at > config.drain_timeout_s
            ):
                break
            if stop.is_set():  # Ctrl-C, SIGTERM, or a service died
                console.print(
                    "[yellow]stopping: workers finish their running chunk first "
                    "(Ctrl-C again kills them) ..."
                )
                raise DemoInterruptedError("demo interrupted; stopping every process")
            if time.monotonic() - started > config.timeout_s:
                console.print(f"[red]demo timed out after {config.timeout_s:.0f} s")
                break
            await asyncio.sleep(config.refresh_s)
    return ids, (done_at or time.monotonic()) - started, workers


def summarize(
    sup: Supervisor,
    settings: Settings,
    ids: list[int],
    wall_s: float,
    config: DemoSettings,
    *,
    final_workers: int,
) -> DemoResult:
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
            chunks_stage[sub.stage] += _is_chunk(sub.slug)
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
    return DemoResult(
        wall_s=wall_s,
        peak_workers=max((s.actual for s in autoscaler.samples), default=0),
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
    )


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


def run_demo(
    config: DemoSettings,
    *,
    env: dict[str, str],
    console: Console,
    autoscaling: AutoscalerSettings | None = None,
) -> DemoResult:
    """Run the whole demo; every process is stopped before this returns."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(env)
    if not env.get("OASIS_KEDA_STORAGE_DIR"):
        settings = settings.replace(storage_dir=config.out_dir / "storage")
    from oasis_keda.runtime.embedded_redis import free_port

    sup_config = SupervisorSettings(
        settings=settings,
        autoscaler=autoscaling or AutoscalerSettings(),
        api_port=free_port(),
    )
    model_dir = write_model(config)
    warm_s = warm_numba_cache(model_dir, env, console)
    if warm_s is not None:
        console.print(f"numba cache warm after {warm_s:.0f} s")
    sup = Supervisor(sup_config, env=env)
    console.print("starting Redis, the scaler, the controller, the API and the autoscaler ...")
    sup.start()
    try:
        settings = settings.replace(redis_url=sup.redis_url)
        sup.make_autoscaler()

        async def main() -> tuple[list[int], float, int]:
            stop = asyncio.Event()
            serving = asyncio.create_task(sup.serve(until=stop))
            try:
                return await _drive(sup, config, settings, console, stop, model_dir)
            finally:
                stop.set()
                await serving

        ids, wall_s, final_workers = asyncio.run(main())
        result = summarize(sup, settings, ids, wall_s, config, final_workers=final_workers)
        return dataclasses.replace(result, warm_s=warm_s)
    finally:
        sup.stop()
