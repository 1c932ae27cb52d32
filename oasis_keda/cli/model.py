"""``oasis-keda model synth``: write the built-in synthetic model to a directory;
``oasis-keda model warm``: compile a model's numba code in parallel, once.

The main job, the demo and the fast tests run on this model, so it must be there without
network or ../shared. The directory it writes is an ordinary oasislmf model directory that
``oasis-keda models register ID --model-dir DIR`` accepts.
"""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_FOOTPRINT_DENSITY = 0.02  # oasis_keda.runtime.synth's, without importing it here


def _density(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if not 0 < value <= 1:  # also refuses nan
        raise click.BadParameter(
            f"{value} is not a fraction of the area perils in (0, 1]; e.g. 0.02 for 2%"
        )
    return value


@click.group()
def model() -> None:
    """Built-in model tools."""


@model.command("synth")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to write the model into (created if missing).",
)
@click.option(
    "--locations",
    default=None,
    type=click.IntRange(min=1),
    help="Rows of the OED location file.  [default: 40]",
)
@click.option(
    "--events",
    default=None,
    type=click.IntRange(min=1),
    help="Events in the event set.  [default: 60]",
)
@click.option(
    "--footprint-density",
    default=DEFAULT_FOOTPRINT_DENSITY,
    show_default=True,
    type=float,
    callback=_density,
    help="Fraction of the area perils each event touches, in (0, 1].",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def synth(
    directory: str,
    locations: int | None,
    events: int | None,
    footprint_density: float,
    seed: int,
) -> None:
    """Write a small deterministic Oasis model (same arguments, same bytes)."""
    from worker.oasis_env import prepare_process

    prepare_process()
    from oasis_keda.runtime.synth import DEFAULT_EVENTS, DEFAULT_LOCATIONS, write_synthetic_model

    written = write_synthetic_model(
        Path(directory),
        locations=locations or DEFAULT_LOCATIONS,
        events=events or DEFAULT_EVENTS,
        seed=seed,
        footprint_density=footprint_density,
    )
    click.echo(f"model written to {written.root}")
    click.echo(f"  locations: {written.root / 'location.csv'}")
    click.echo(f"  accounts:  {written.root / 'account.csv'}")
    click.echo(f"  settings:  {written.root / 'analysis_settings.json'}")
    click.echo(f"  register:  oasis-keda models register synth --model-dir {written.root}")


@model.command("warm")
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The oasislmf model directory (with oasislmf.json, location.csv).",
)
@click.option(
    "--settings",
    "settings_file",
    default=None,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Analysis settings whose pipeline to compile.  [default: MODEL_DIR/analysis_settings.json]",
)
@click.option(
    "--jobs",
    "-j",
    default=None,
    type=click.IntRange(min=1),
    help="Processes at once.  [default: the machine's cores]",
)
@click.option("--force", is_flag=True, help="Compile again even if done for this configuration.")
def warm(model_dir: Path, settings_file: Path | None, jobs: int | None, force: bool) -> None:
    """Compile the numba code of MODEL's pipeline tools into the numba cache, one process
    per tool (NUMBA_CACHE_DIR, else ~/.cache/oasis-keda/numba)."""
    from oasis_keda.cli import environ
    from oasis_keda.runtime.errors import LocalRuntimeError
    from oasis_keda.runtime.warm import warm_model
    from worker.oasis_env import numba_cache_dir

    env = environ()
    cache = numba_cache_dir(env)
    try:
        result = warm_model(
            model_dir, cache_dir=cache, settings_file=settings_file, jobs=jobs, env=env, force=force
        )
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if result is None:
        click.echo(f"numba cache {cache} is already warm for this model and settings")
        return
    click.echo(
        f"numba cache {cache} warm in {result.seconds:.0f} s "
        f"({result.jobs} at once): {' '.join(result.tools)}"
    )
