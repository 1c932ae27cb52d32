"""``oasis-keda status``: every model's live state and desired workers.

Computed by the scaler's own state reader and decision code, so it shows what the scaler
answers KEDA right now.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from oasis_keda.cli import environ
from oasis_keda.cli.models import redis_url_option
from oasis_keda.errors import BrokerUnavailableError
from oasis_keda.settings import Settings


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
        decisions = await Decider(reader).decide_all()
    finally:
        await client.aclose()
    limit = decisions[0].limit if decisions else None
    return [_row(d) for d in decisions], limit


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_url_option
def status(as_json: bool, redis_url: str | None) -> None:
    """One row per model: strategy, waiting, running, main tasks, busy and desired workers."""
    settings = Settings.from_env(environ()).replace(redis_url=redis_url)
    try:
        rows, limit = asyncio.run(_collect(settings.redis_url))
    except BrokerUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"global_worker_limit": limit, "models": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"oasis-keda models (global worker limit: {'none' if limit is None else limit})"
    )
    columns = ["model_id", "strategy", "waiting", "running", "main_tasks", "busy", "desired"]
    for name in columns:
        table.add_column(name.replace("_", " "), justify="left" if name in
                         ("model_id", "strategy") else "right")  # fmt: skip
    for row in rows:
        desired = str(row["desired"])
        if row["wanted"] != row["desired"]:
            desired += f" (wants {row['wanted']})"
        table.add_row(*(str(row[c]) for c in columns[:-1]), desired)
    Console().print(table)
