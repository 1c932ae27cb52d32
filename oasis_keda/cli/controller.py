"""``oasis-keda controller serve``: the task controller.

Consumes main tasks from ``keys.CONTROLLER_QUEUE`` (one at a time: dispatch is quick), and
runs the janitor that restores sub-tasks of dead workers, sends again what a lost queue
lost, rebuilds a lost registry cache and keeps the scaler's main-task state equal to the
records (also once at start-up, to repair what a crash left).
"""

from __future__ import annotations

import logging
import os
import socket

import click

from oasis_keda.cli import environ, metrics_port_option
from oasis_keda.core import keys
from oasis_keda.core.leases import DEFAULT_TTL_S
from oasis_keda.core.metrics import serve as serve_metrics
from oasis_keda.core.settings import Settings
from task_controller.janitor import DEFAULT_GRACE_S, DEFAULT_INTERVAL_S

logger = logging.getLogger(__name__)


@click.group()
def controller() -> None:
    """Run the task controller."""


@controller.command("serve")
@click.option("--redis-url", default=None, help="Broker (default: OASIS_KEDA_REDIS_URL).")
@click.option("--storage-dir", default=None, type=click.Path(file_okay=False))
@click.option("--database-url", default=None, help="Records DB (OASIS_KEDA_DATABASE_URL).")
@click.option(
    "--janitor-interval-s",
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    type=click.FloatRange(min=0.1),
)
@click.option(
    "--janitor-grace-s",
    default=DEFAULT_GRACE_S,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Restore an unacked sub-task only after this long without a live lease.",
)
@click.option(
    "--lease-ttl-s",
    default=DEFAULT_TTL_S,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Main-task lease TTL: a killed controller's main tasks are restored after it.",
)
@metrics_port_option
def serve(
    redis_url: str | None,
    storage_dir: str | None,
    database_url: str | None,
    janitor_interval_s: float,
    janitor_grace_s: float,
    lease_ttl_s: float,
    metrics_port: int,
) -> None:
    """Consume main tasks until SIGTERM."""
    from oasis_keda.core.leases import LeaseKeeper
    from task_controller.app import janitor_queues, make_dispatcher, reconcile
    from task_controller.dispatch import warm_imports
    from task_controller.janitor import Janitor
    from task_controller.lost_queue import LostQueue
    from worker import signals

    settings = Settings.from_env(environ()).replace(
        redis_url=redis_url, storage_dir=storage_dir, database_url=database_url
    )
    ctl = make_dispatcher(settings)
    warm_imports()
    serve_metrics(metrics_port, what="controller metrics")
    node = f"controller.{os.getpid()}@{socket.gethostname()}"
    keeper = LeaseKeeper(ctl.client, queue=keys.CONTROLLER_QUEUE, node=node, ttl_s=lease_ttl_s)
    signals.install(recorder=ctl.app.oasis.recorder, keeper=keeper)
    keeper.start()
    reconcile(ctl)
    lost = LostQueue(ctl, grace_s=janitor_grace_s)  # noticed on two passes in a row
    janitor = Janitor(
        ctl.client,
        queues=lambda: janitor_queues(ctl),
        reconcile=lambda: reconcile(ctl, lost),
        grace_s=janitor_grace_s,
        interval_s=janitor_interval_s,
    )
    janitor.start()
    try:
        ctl.app.worker_main(
            [
                "worker",
                "--queues",
                keys.CONTROLLER_QUEUE,
                "--hostname",
                node,
                "--pool",
                "solo",
                "--prefetch-multiplier",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            ]
        )
    finally:
        janitor.stop()
        keeper.stop()
