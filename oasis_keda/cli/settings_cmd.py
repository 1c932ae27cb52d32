"""``oasis-keda settings``: cluster-wide settings kept in Redis."""

from __future__ import annotations

import click

from oasis_keda.cli.models import config_error_message, fail, redis_url_option, registry_for
from oasis_keda.core.errors import ConfigError


@click.group()
def settings() -> None:
    """Show or change cluster-wide settings."""


@settings.command("global-worker-limit")
@click.argument("limit", required=False, type=int)
@click.option("--unset", is_flag=True, help="Remove the limit (no cap).")
@redis_url_option
def global_worker_limit(limit: int | None, unset: bool, redis_url: str | None) -> None:
    """Show, set (LIMIT) or remove (--unset) the cap on workers summed over all models."""
    if unset and limit is not None:
        raise click.UsageError("give either LIMIT or --unset, not both")
    registry = registry_for(redis_url)
    if unset:
        registry.set_global_worker_limit(None)
    elif limit is not None:
        try:
            registry.set_global_worker_limit(limit)
        except ConfigError as exc:
            fail(config_error_message("global worker limit", exc))
    current = registry.global_worker_limit()
    click.echo("global-worker-limit: " + ("unset (no cap)" if current is None else str(current)))
