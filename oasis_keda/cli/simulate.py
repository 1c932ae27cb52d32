"""``oasis-keda simulate``: replay a workload against scaling configurations (what-if).

The workload is a file (``analyses export`` writes one) or generated (``--generate``). Each
``--strategy`` is a JSON object: scaling fields (``scaling_strategy``,
``chunks_per_worker``, ...) and optionally ``name``, ``policy``, ``global_limit``,
``list_length``, ``grace_s``; without any, the workload's recorded configuration runs. The
platform timings (worker start, sub-task overhead, phase delay) default to those the export
measured, if the workload has them. Each configuration of ours is also run under KEDA's
Redis list-length rule and the Oasis worker controller's policy unless ``--no-baselines``. docs/SIMULATOR.md has the details.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from oasis_keda.cli import environ


def _object(raw: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return value


@click.command()
@click.option(
    "--workload", "workload_path", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option("--generate", "generate", default=None, help="Generate a workload: JSON settings.")
@click.option("--strategy", "strategies", multiple=True, help="A configuration (JSON object).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--start-s", type=float, default=None, help="Worker start time (default 5).")
@click.option("--added-start-s", type=float, default=None, help="A worker added beside others.")
@click.option("--task-overhead-s", type=float, default=None, help="Per sub-task (default 0).")
@click.option("--phase-delay-s", type=float, default=None, help="Between phases (default 0).")
@click.option("--polling-interval-s", type=int, default=None)
@click.option("--cooldown-period-s", type=int, default=None)
@click.option("--scale-down-stabilization-s", type=int, default=None)
@click.option("--no-baselines", is_flag=True, help="Only the configurations given.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def simulate(
    workload_path: Path | None,
    generate: str | None,
    strategies: tuple[str, ...],
    out: Path | None,
    start_s: float | None,
    added_start_s: float | None,
    task_overhead_s: float | None,
    phase_delay_s: float | None,
    polling_interval_s: int | None,
    cooldown_period_s: int | None,
    scale_down_stabilization_s: int | None,
    no_baselines: bool,
    as_json: bool,
) -> None:
    """Replay a workload against scaling configurations on a simulated clock."""
    from rich.console import Console

    from oasis_keda.core.errors import ConfigError
    from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
    from oasis_keda.runtime.simulate import SimSettings, parse_configuration
    from oasis_keda.runtime.simulate import results as res
    from oasis_keda.runtime.simulate import simulate as replay
    from oasis_keda.runtime.simulate import workload as wl
    from oasis_keda.runtime.simulate.policies import BASELINES

    if (workload_path is None) == (generate is None):
        raise click.UsageError("give exactly one of --workload FILE and --generate JSON")
    try:
        configurations = [
            parse_configuration(_object(raw, "--strategy"), f"config {i}")
            for i, raw in enumerate(strategies, start=1)
        ] or [parse_configuration({}, "recorded")]
    except (ConfigError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--strategy") from exc
    try:
        if workload_path is not None:
            work = wl.read(workload_path)
        else:
            assert generate is not None
            raw = _object(generate, "--generate")
            for key in ("lookup_chunks", "loss_chunks"):
                if key in raw:
                    raw[key] = tuple(raw[key])
            work = wl.generate(wl.GeneratorSettings(**raw), configurations[0].scaling)
    except (wl.WorkloadError, ConfigError, TypeError, KeyError, OSError) as exc:
        raise click.ClickException(f"workload: {exc}") from exc
    if not no_baselines:
        configurations += [
            c.baseline(policy)
            for c in list(configurations)
            if c.policy == "oasis-keda"
            for policy in BASELINES
        ]
    autoscaler = AutoscalerSettings.from_env(environ()).replace(
        polling_interval_s=polling_interval_s,
        cooldown_period_s=cooldown_period_s,
        scale_down_stabilization_s=scale_down_stabilization_s,
    )

    def timing(given: float | None, key: str, default: float) -> float:
        return given if given is not None else work.timings.get(key, default)

    settings = SimSettings(
        autoscaler=autoscaler,
        worker_start_s=timing(start_s, "worker_start_s", 5.0),
        added_start_s=added_start_s,
        task_overhead_s=timing(task_overhead_s, "task_overhead_s", 0.0),
        phase_delay_s=timing(phase_delay_s, "phase_delay_s", 0.0),
    )
    results = [replay(work, c, settings) for c in configurations]
    if as_json:
        click.echo(json.dumps([r.summary() for r in results], indent=2))
    else:
        title = f"What-if: {len(work.analyses)} analyses, {work.work_s:.0f} s of sub-task work"
        Console(width=max(Console().width, 130)).print(res.table(results, title=title))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if generate is not None:
            wl.write(work, out / "workload.jsonl")
        res.write_json(results, out / "results.json")
        res.plot(results, out / "simulate.png")
        (out / "settings.json").write_text(
            json.dumps(
                {
                    "worker_start_s": settings.worker_start_s,
                    "added_start_s": settings.added_start_s,
                    "task_overhead_s": settings.task_overhead_s,
                    "phase_delay_s": settings.phase_delay_s,
                    "autoscaler": dataclasses.asdict(autoscaler),
                },
                indent=2,
            )
            + "\n"
        )
        click.echo(f"wrote {out}/results.json and {out}/simulate.png", err=True)
