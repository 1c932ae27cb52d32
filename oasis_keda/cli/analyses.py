"""``oasis-keda analyses``: create an analysis, generate its inputs, run it, follow it.

``generate``/``run`` return as soon as the analysis is ``*_QUEUED`` (like the Oasis API's
POST); ``--wait`` follows it with a progress bar over its sub-tasks and exits non-zero unless
the stage ends well (1 on error, 2 on cancel or timeout). Refusals (bad status, DYNAMIC loss
chunking without ``number_of_events``, unknown model) exit non-zero before anything queues.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from oasis_keda.cli import environ
from oasis_keda.core.errors import OasisKedaError
from oasis_keda.core.settings import Settings

POLL_S = 0.5
EXIT_ERROR = 1
EXIT_CANCELLED = 2


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _controller(ctx: click.Context) -> Any:
    from task_controller.requests import make_requests

    settings: Settings = ctx.obj
    return make_requests(settings)


@click.group()
@click.option("--redis-url", default=None, help="Broker (default: OASIS_KEDA_REDIS_URL).")
@click.option("--storage-dir", default=None, type=click.Path(file_okay=False))
@click.option("--database-url", default=None, help="Records DB (OASIS_KEDA_DATABASE_URL).")
@click.pass_context
def analyses(
    ctx: click.Context, redis_url: str | None, storage_dir: str | None, database_url: str | None
) -> None:
    """Create, generate, run and inspect analyses."""
    ctx.obj = Settings.from_env(environ()).replace(
        redis_url=redis_url, storage_dir=storage_dir, database_url=database_url
    )


@analyses.command("create")
@click.argument("name")
@click.option("--model", "model_id", required=True)
@click.option("--locations", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--accounts", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--ri-info",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OED reinsurance info file (with --ri-scope and --accounts: reinsurance losses).",
)
@click.option(
    "--ri-scope",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OED reinsurance scope file.",
)
@click.option(
    "--settings",
    "settings_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="analysis_settings.json",
)
@click.option("--priority", default=4, show_default=True, type=click.IntRange(1, 10))
@click.option(
    "--chunking",
    default=None,
    help="The analysis's own chunking configuration (JSON object); else the model's applies.",
)
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    model_id: str,
    locations: Path,
    accounts: Path | None,
    ri_info: Path | None,
    ri_scope: Path | None,
    settings_file: Path | None,
    priority: int,
    chunking: str | None,
) -> None:
    """Create an analysis (and its portfolio); prints its id. Exposure files may be CSV or
    parquet (told by content)."""
    chunking_data = None
    if chunking is not None:
        try:
            chunking_data = json.loads(chunking)
        except json.JSONDecodeError as exc:
            fail(f"--chunking: invalid JSON: {exc}")
    try:
        analysis_id = _controller(ctx).create_analysis(
            name,
            model_id=model_id,
            location_file=locations,
            accounts_file=accounts,
            ri_info_file=ri_info,
            ri_scope_file=ri_scope,
            settings_file=settings_file,
            priority=priority,
            chunking=chunking_data,
        )
    except OasisKedaError as exc:
        fail(str(exc))
    click.echo(analysis_id)


def _request(ctx: click.Context, analysis_id: int, stage: str, wait: bool, timeout: float) -> None:
    controller = _controller(ctx)
    try:
        run_number = controller.request(analysis_id, stage)
    except OasisKedaError as exc:
        fail(f"analysis {analysis_id}: {exc}")
    click.echo(f"analysis {analysis_id}: {stage} queued (run {run_number})", err=True)
    from task_controller import records

    with controller.sessions() as session:
        for warning in records.get_analysis(session, analysis_id).warnings or []:
            click.echo(f"analysis {analysis_id}: warning: {warning}", err=True)
    if wait:
        sys.exit(_wait(controller, analysis_id, timeout))


wait_option = click.option("--wait", is_flag=True, help="Follow the stage until it ends.")
timeout_option = click.option(
    "--timeout",
    default=0.0,
    type=float,
    help="With --wait: give up after this many seconds (0: never).",
)


@analyses.command("generate")
@click.argument("analysis_id", type=int)
@wait_option
@timeout_option
@click.pass_context
def generate(ctx: click.Context, analysis_id: int, wait: bool, timeout: float) -> None:
    """Generate the analysis's input files (lookup)."""
    _request(ctx, analysis_id, "inputs", wait, timeout)


@analyses.command("run")
@click.argument("analysis_id", type=int)
@wait_option
@timeout_option
@click.pass_context
def run(ctx: click.Context, analysis_id: int, wait: bool, timeout: float) -> None:
    """Run the losses of an analysis whose inputs are READY."""
    _request(ctx, analysis_id, "losses", wait, timeout)


def _wait(controller: Any, analysis_id: int, timeout: float) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from oasis_keda.core.stages import stage_of_status
    from task_controller import records

    deadline = time.monotonic() + timeout if timeout > 0 else None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        bar = progress.add_task(f"analysis {analysis_id}", total=None, status="")
        while True:
            with controller.sessions() as session:
                analysis = records.get_analysis(session, analysis_id)
                counts = records.status_count(session, analysis)
                status = analysis.status
            progress.update(
                bar, total=counts["TOTAL"] or None, completed=counts["COMPLETED"], status=status
            )
            if stage_of_status(status) is None:
                break
            if deadline is not None and time.monotonic() > deadline:
                click.echo(f"analysis {analysis_id}: still {status} after {timeout} s", err=True)
                return EXIT_CANCELLED
            time.sleep(POLL_S)
    click.echo(f"analysis {analysis_id}: {status}", err=True)
    if status.endswith("_ERROR"):
        _print_errors(controller, analysis_id)
        return EXIT_ERROR
    if status.endswith("_CANCELLED"):
        return EXIT_CANCELLED
    return 0


def _print_errors(controller: Any, analysis_id: int) -> None:
    from task_controller import records

    with controller.sessions() as session:
        for sub in records.subtasks(session, analysis_id):
            if sub.status == "ERROR":
                click.echo(f"--- sub-task {sub.id} {sub.slug} failed:", err=True)
                click.echo((sub.error_log or "").rstrip(), err=True)


@analyses.command("show")
@click.argument("analysis_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, analysis_id: int, as_json: bool) -> None:
    """Show an analysis (status, chunks, sub-task counts)."""
    from oasis_keda.core import eta
    from task_controller import records

    controller = _controller(ctx)
    try:
        with controller.sessions() as session:
            analysis = records.get_analysis(session, analysis_id)
            data = records.analysis_dict(session, analysis, client=controller.client)
    except OasisKedaError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in (
        "id",
        "name",
        "model",
        "status",
        "priority",
        "run_number",
        "lookup_chunks",
        "analysis_chunks",
        "num_events_total",
        "num_events_complete",
    ):
        click.echo(f"{key:20} {data[key]}")
    counts = data["status_count"]
    click.echo(f"{'sub-tasks':20} " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    if data["eta"] is not None:
        click.echo(f"{'eta':20} {eta.text(data['eta'])}")
    for warning in data["warnings"]:
        click.echo(f"{'warning':20} {warning}")


@analyses.command("subtasks")
@click.argument("analysis_id", type=int)
@click.option("--run", "run_number", type=int, default=None, help="Run number (default: latest).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def subtasks(ctx: click.Context, analysis_id: int, run_number: int | None, as_json: bool) -> None:
    """List the sub-tasks of the analysis's latest (or a given) run."""
    from task_controller import records

    controller = _controller(ctx)
    try:
        with controller.sessions() as session:
            rows = [
                records.subtask_dict(s) for s in records.subtasks(session, analysis_id, run_number)
            ]
    except OasisKedaError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "slug", "status", "queue", "start", "end", "retries")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["slug"],
            row["status"],
            row["queue_name"],
            row["start_time"] or "",
            row["end_time"] or "",
            str(row["retry_count"]),
        )
    Console().print(table)


@analyses.command("logs")
@click.argument("subtask_id", type=int)
@click.pass_context
def logs(ctx: click.Context, subtask_id: int) -> None:
    """Print a sub-task's output log and error log."""
    from oasis_keda.core.store import SubTask
    from task_controller.errors import SubTaskNotFoundError

    controller = _controller(ctx)
    with controller.sessions() as session:
        sub = session.get(SubTask, subtask_id)
        if sub is None:
            fail(str(SubTaskNotFoundError(subtask_id)))
        click.echo(f"# sub-task {sub.id} {sub.slug} ({sub.status})")
        click.echo("# output log")
        click.echo((sub.output_log or "").rstrip())
        if sub.error_log:
            click.echo("# error log")
            click.echo(sub.error_log.rstrip())
        if sub.retry_log:
            click.echo("# retry log")
            click.echo(sub.retry_log.rstrip())


@analyses.command("cancel")
@click.argument("analysis_id", type=int)
@click.pass_context
def cancel(ctx: click.Context, analysis_id: int) -> None:
    """Cancel the stage in progress; queued and running sub-tasks are revoked."""
    try:
        revoked = _controller(ctx).cancel(analysis_id)
    except OasisKedaError as exc:
        fail(f"analysis {analysis_id}: {exc}")
    click.echo(f"analysis {analysis_id}: cancelled ({len(revoked)} sub-tasks revoked)", err=True)


@analyses.command("outputs")
@click.argument("analysis_id", type=int)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def outputs(ctx: click.Context, analysis_id: int, out: Path) -> None:
    """Copy the ORD outputs of the analysis's completed run into OUT."""
    from oasis_keda.core.store import StoredFile
    from task_controller import records

    controller = _controller(ctx)
    with controller.sessions() as session:
        try:
            analysis = records.get_analysis(session, analysis_id)
        except OasisKedaError as exc:
            fail(str(exc))
        stored = (
            session.get(StoredFile, analysis.output_file_id) if analysis.output_file_id else None
        )
        if stored is None:
            fail(f"analysis {analysis_id} has no outputs (status {analysis.status})")
        source = controller.storage.abspath(stored.path).parent / "outputs"
    if not source.is_dir():
        fail(f"outputs of analysis {analysis_id} are missing from {source}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out, dirs_exist_ok=True)
    click.echo(str(out))


@analyses.command("timeline")
@click.argument("analysis_id", type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_number", type=int, default=None, help="Run number (default: latest).")
@click.pass_context
def timeline(ctx: click.Context, analysis_id: int, out: Path, run_number: int | None) -> None:
    """Draw the sub-task timeline (rows per worker, coloured by step) as a PNG."""
    from oasis_keda.runtime.timeline import draw_analysis_timeline

    try:
        path = draw_analysis_timeline(ctx.obj, analysis_id, out, run_number=run_number)
    except OasisKedaError as exc:
        fail(str(exc))
    click.echo(str(path))


@analyses.command("export")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_id", default=None, help="Only this model's analyses.")
@click.option("--id", "analysis_ids", type=int, multiple=True, help="Only these analyses.")
@click.pass_context
def export(
    ctx: click.Context, out: Path, model_id: str | None, analysis_ids: tuple[int, ...]
) -> None:
    """Write the sub-task history of past analyses as a workload for ``simulate``."""
    from oasis_keda.runtime.simulate import workload as wl
    from oasis_keda.runtime.simulate.export import export_workload

    settings: Settings = ctx.obj
    work, missing = export_workload(
        settings.effective_database_url,
        settings.redis_url,
        model_id=model_id,
        analysis_ids=analysis_ids,
    )
    if not work.analyses:
        fail("no analysis with a completed stage to export")
    for model in missing:
        click.echo(f"model {model}: scaling not in the registry, defaults written", err=True)
    wl.write(work, out)
    click.echo(f"{out}: {len(work.analyses)} analyses", err=True)
