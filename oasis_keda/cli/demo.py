"""``oasis-keda demo`` (what ``make demo`` runs): the main job end to end, then a summary.

See :mod:`oasis_keda.runtime.demo`. Exits non-zero unless every analysis completed, no
sub-task was lost to a scale-down and the workers were back to 0 at the end.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from oasis_keda.cli import environ


def _quiet_console_logging(log_file: Path) -> None:
    """Keep the terminal for the live display: warnings only there, everything in a file."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(logging.WARNING)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)


@click.command()
@click.option(
    "--out",
    "out_dir",
    default=Path("demo-output"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Pictures, model, logs (and storage unless OASIS_KEDA_STORAGE_DIR is set).",
)
@click.option("--analyses", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--max-workers", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option("--locations", default=400, show_default=True, type=click.IntRange(1))
@click.option("--events", default=600, show_default=True, type=click.IntRange(1))
@click.option(
    "--count-planned/--no-count-planned",
    default=False,
    show_default=True,
    help="Scale on the planned sub-tasks too (scaling field count_planned).",
)
def demo(
    out_dir: Path,
    analyses: int,
    max_workers: int,
    locations: int,
    events: int,
    count_planned: bool,
) -> None:
    """Start the stack, run three analyses of the synthetic model, summarize, stop."""
    from rich.console import Console

    from oasis_keda.runtime.demo.common import DemoSettings
    from oasis_keda.runtime.demo.driving import run_demo
    from oasis_keda.runtime.demo.reporting import print_summary
    from oasis_keda.runtime.errors import LocalRuntimeError

    out_dir = out_dir.resolve()
    _quiet_console_logging(out_dir / "demo.log")
    console = Console()
    config = DemoSettings(
        out_dir=out_dir,
        analyses=analyses,
        max_workers=max_workers,
        locations=locations,
        events=events,
        count_planned=count_planned,
    )
    try:
        result = run_demo(config, env=environ(), console=console)
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    print_summary(result, console)
    if not result.ok:
        console.print("[red]demo finished with problems (see above and demo.log)")
        sys.exit(1)
    console.print("[green]demo complete: every analysis ran, workers are back to 0.")
