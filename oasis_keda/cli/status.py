"""``oasis-keda status``: every model's live state and desired workers.

Computed by the scaler's own state reader and decision code, so it shows what the scaler
answers KEDA right now. Exits non-zero with a message when Redis cannot be reached, or when
the registry cache in Redis lacks models the records database has (Redis lost its data and
the controller has not rebuilt the cache yet).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import click

from oasis_keda.cli import environ
from oasis_keda.cli.models import redis_url_option, store_for
from oasis_keda.core.errors import BrokerUnavailableError
from oasis_keda.core.settings import Settings


def _row(decision: Any) -> dict[str, Any]:
    s = decision.state
    return {
        "model_id": decision.model_id,
        "queue": decision.queue,
        "strategy": decision.config.scaling_strategy.value,
        "waiting": s.waiting,
        "running": s.reserved,
        "main_tasks": s.main_tasks,
        "busy": s.busy,
        "priority": s.priority,
        "wanted": decision.wanted,
        "desired": decision.desired,
    }


async def _collect(redis_url: str) -> tuple[list[dict[str, Any]], int | None]:
    from scaler.deciding import Decider
    from scaler.state import StateReader, make_client

    client = make_client(redis_url, timeout_s=2.0)
    try:
        reader = StateReader(client, timeout_s=2.0)
        decisions = await Decider(reader, record_grants=False).decide_all()
    finally:
        await client.aclose()
    limit = decisions[0].limit if decisions else None
    rows = [_row(d) for d in decisions]
    replicas = _runtime_replicas(redis_url)
    for row in rows:
        # Replicas as the local runtime's autoscaler last set them (None in a cluster, where
        # `kubectl oasis status` reads them from the Deployment).
        got = replicas.get(row["model_id"])
        row["replicas"] = None if got is None else got.get("desired")
        row["actual"] = None if got is None else got.get("actual")
    return rows, limit


def _runtime_replicas(redis_url: str) -> dict[str, dict[str, Any]]:
    import redis

    from oasis_keda.runtime.autoscaler import read_runtime_replicas

    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        return read_runtime_replicas(client)
    except redis.RedisError as exc:
        raise BrokerUnavailableError(f"Redis at {redis_url} is unreachable: {exc}") from exc
    finally:
        client.close()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_url_option
def status(as_json: bool, redis_url: str | None) -> None:
    """One row per model: strategy, queue state, busy, actual and desired workers.

    Actual workers are shown when the local runtime (`oasis-keda up`) runs them.
    """
    settings = Settings.from_env(environ()).replace(redis_url=redis_url)
    try:
        rows, limit = asyncio.run(_collect(settings.redis_url))
        missing = _missing(settings)
        running = _analyses(settings)
    except BrokerUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        body = {"global_worker_limit": limit, "models": rows, "analyses": running}
        click.echo(json.dumps(body, indent=2))
    else:
        _print_table(rows, limit)
        _print_analyses(running)
    if missing:
        raise click.ClickException(
            f"the registry in Redis lacks {len(missing)} model(s) the records database has: "
            f"{', '.join(missing)} (Redis lost its data; the controller rebuilds the registry "
            "at start-up and at its next janitor pass)"
        )


def _analyses(settings: Settings) -> list[dict[str, Any]]:
    """The analyses in progress: stage, sub-tasks done, and the ETA."""
    import redis

    from oasis_keda.core import eta
    from oasis_keda.core.store import make_engine, make_session_factory
    from task_controller import records

    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    sessions = make_session_factory(make_engine(settings.effective_database_url))
    try:
        with sessions() as session:
            out = []
            for analysis in records.active_analyses(session):
                counts = records.status_count(session, analysis)
                out.append(
                    {
                        "id": analysis.id,
                        "model_id": analysis.model_id,
                        "status": analysis.status,
                        "done": counts["COMPLETED"],
                        "total": counts["TOTAL"],
                        "eta": eta.describe(session, client, analysis),
                    }
                )
            return out
    finally:
        client.close()


def _print_analyses(running: list[dict[str, Any]]) -> None:
    from oasis_keda.core import eta

    if not running:
        click.echo("no analysis in progress")
        return
    click.echo("analyses in progress:")
    for item in running:
        shown = "ETA unknown yet" if item["eta"] is None else eta.text(item["eta"])
        click.echo(
            f"  {item['id']:>5} {item['model_id']} {item['status']} "
            f"{item['done']}/{item['total']} sub-tasks; {shown}"
        )


def _missing(settings: Settings) -> list[str]:
    import redis

    from oasis_keda.core.registry_store import missing_models

    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    try:
        return missing_models(client, store_for(settings))
    except redis.RedisError as exc:
        raise BrokerUnavailableError(f"Redis is unreachable: {exc}") from exc
    finally:
        client.close()


def _print_table(rows: list[dict[str, Any]], limit: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"oasis-keda models (global worker limit: {'none' if limit is None else limit})"
    )
    columns = [
        "model_id",
        "strategy",
        "waiting",
        "running",
        "main_tasks",
        "busy",
        "actual",
        "desired",
    ]
    for name in columns:
        text = name in ("model_id", "strategy")
        table.add_column(name.replace("_", " "), justify="left" if text else "right", no_wrap=text)
    for row in rows:
        desired = str(row["desired"])
        if row["wanted"] != row["desired"]:
            desired += f" (wants {row['wanted']})"
        cells = ["-" if row[c] is None else str(row[c]) for c in columns[:-1]]
        table.add_row(*cells, desired)
    # Piped output has no terminal width; do not squeeze the table into 80 columns.
    Console(width=max(shutil.get_terminal_size((120, 24)).columns, 100)).print(table)
