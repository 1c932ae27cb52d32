"""``oasis-keda up``: the whole system on one machine until Ctrl-C.

Redis (embedded unless ``OASIS_KEDA_REDIS_URL`` is set), the scaler, the task controller,
the REST API and the local autoscaler (KEDA + HPA against the scaler, workers as processes).
Ctrl-C or SIGTERM stops everything in order: workers finish their chunk and exit, then the
services, then Redis. Nothing is left running. A crashed scaler, controller or API is
restarted with backoff; one that keeps crashing stops everything, and ``up`` exits 1.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from oasis_keda.cli import environ

logger = logging.getLogger(__name__)


@click.command()
@click.option("--storage-dir", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--scaler-port", default=0, type=click.IntRange(0, 65535), help="0 = a free port.")
@click.option("--api-port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-api", is_flag=True, help="Do not start the REST API.")
@click.option("--polling-interval", default=None, type=click.IntRange(min=1), help="Seconds [1].")
@click.option("--cooldown", default=None, type=click.IntRange(min=0), help="Seconds [5].")
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Before workers start: compile the numba code of each registered model's pipeline "
    "(as `oasis-keda model warm`, with its directory's analysis_settings.json).",
)
@click.option(
    "--max-restarts",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Restarts of a crashed scaler, controller or API within 5 minutes before giving up.",
)
def up(
    storage_dir: Path | None,
    scaler_port: int,
    api_port: int,
    no_api: bool,
    polling_interval: int | None,
    cooldown: int | None,
    warm: bool,
    max_restarts: int,
) -> None:
    """Run Redis, the scaler, the controller, the API and the autoscaler until Ctrl-C."""
    from oasis_keda.core.settings import Settings
    from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
    from oasis_keda.runtime.embedded_redis import free_port
    from oasis_keda.runtime.errors import LocalRuntimeError, PartFailedError
    from oasis_keda.runtime.restarts import RestartPolicy
    from oasis_keda.runtime.supervisor import Supervisor, SupervisorSettings

    env = environ()
    try:
        settings = Settings.from_env(env).replace(storage_dir=storage_dir)
        autoscaling = AutoscalerSettings.from_env(env).replace(
            polling_interval_s=polling_interval, cooldown_period_s=cooldown
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    config = SupervisorSettings(
        settings=settings,
        autoscaler=autoscaling,
        scaler_port=scaler_port,
        api=not no_api,
        api_port=api_port or free_port(),
        restarts=RestartPolicy(max_restarts=max_restarts),
    )
    supervisor = Supervisor(config, env=env)
    try:
        supervisor.start()
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        click.echo(f"Redis       {supervisor.redis_url}", err=True)
        click.echo(f"scaler      {supervisor.scaler_address} (gRPC)", err=True)
        if supervisor.api_url:
            click.echo(f"API         {supervisor.api_url}", err=True)
        click.echo(f"storage     {settings.storage_dir}", err=True)
        click.echo(f"logs        {supervisor.run_dir}", err=True)
        if warm:
            warm_registered(supervisor.redis_url, env)
        click.echo("Running; Ctrl-C stops everything.", err=True)
        asyncio.run(supervisor.serve())
    except PartFailedError as exc:
        failed: PartFailedError | None = exc
    else:
        failed = None
    finally:
        click.echo("Stopping: workers first (warm shutdown), then the services.", err=True)
        supervisor.stop()
    click.echo("Stopped; nothing left running.", err=True)
    if failed is not None:
        raise click.ClickException(f"{failed}; see the logs in {supervisor.run_dir}")


def warm_registered(redis_url: str, env: dict[str, str]) -> None:
    """Warm the numba cache for every registered model with a model directory and analysis
    settings in it; a model that fails is reported and skipped (its workers compile)."""
    import redis

    from oasis_keda.core.registry import Registry
    from oasis_keda.runtime.errors import LocalRuntimeError
    from oasis_keda.runtime.warm import warm_model
    from worker.oasis_env import numba_cache_dir

    client = redis.Redis.from_url(redis_url)
    try:
        records = Registry(client).list()
    finally:
        client.close()
    cache = numba_cache_dir(env)
    for record in records:
        if not record.model_dir:
            continue
        model_dir = Path(record.model_dir)
        if not (model_dir / "analysis_settings.json").is_file():
            continue
        click.echo(f"numba cache {cache}: warming model {record.model_id}", err=True)
        try:
            warm_model(model_dir, cache_dir=cache, env=env)
        except (LocalRuntimeError, OSError) as exc:
            click.echo(
                f"model {record.model_id}: warm-up failed, its workers compile: {exc}", err=True
            )
