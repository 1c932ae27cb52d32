"""``oasis-keda worker serve``: a Celery worker for one model's queue.

One task at a time per process slot (``acks_late``, prefetch 1). With ``--concurrency 1``
(the default, one worker per pod) the task runs in the main process (solo pool), so the
oasislmf code and model data stay loaded between chunks; more slots use a prefork pool.
SIGTERM is a warm shutdown: the running chunk finishes, no new one is taken. The busy and
task leases the scaler reads, and in a pod its ``pod-deletion-cost`` annotation (busy high,
idle low, so scale-in removes idle pods first), are kept by this main process.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import click

from oasis_keda.cli import environ
from oasis_keda.core.errors import ModelNotFoundError
from oasis_keda.core.leases import DEFAULT_TTL_S
from oasis_keda.core.settings import Settings

logger = logging.getLogger(__name__)


@click.group()
def worker() -> None:
    """Run a worker for a model's queue."""


@worker.command("serve")
@click.option("--model", "model_id", required=True, help="Registered model id.")
@click.option("--concurrency", "-c", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--redis-url", default=None, help="Broker (default: OASIS_KEDA_REDIS_URL).")
@click.option("--storage-dir", default=None, type=click.Path(file_okay=False))
@click.option("--database-url", default=None, help="Records DB (OASIS_KEDA_DATABASE_URL).")
@click.option(
    "--lease-ttl-s",
    default=DEFAULT_TTL_S,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Task/busy lease TTL: a killed worker stops counting after this long.",
)
@click.option("--warm/--no-warm", default=None, help="Import oasislmf before the first task.")
def serve(
    model_id: str,
    concurrency: int,
    redis_url: str | None,
    storage_dir: str | None,
    database_url: str | None,
    lease_ttl_s: float,
    warm: bool | None,
) -> None:
    """Consume MODEL's queue until SIGTERM (warm shutdown)."""
    from celery import signals as celery_signals

    from oasis_keda.core.leases import LeaseKeeper
    from oasis_keda.core.registry import Registry
    from worker import signals
    from worker.app import make_app
    from worker.deletion_cost import PodDeletionCost

    settings = Settings.from_env(environ()).replace(
        redis_url=redis_url, storage_dir=storage_dir, database_url=database_url
    )
    app = make_app(settings)
    try:
        model = Registry(app.oasis.client).get(model_id)
    except ModelNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    from worker.oasis_env import prepare_process

    prepare_process()  # the persistent numba cache, before anything imports numba
    if warm is None:
        warm = bool(model.model_dir)
    if warm:
        from worker.oasis_env import warm_up

        warm_up()
    node = f"{model_id}.{os.getpid()}@{socket.gethostname()}".replace("|", "_")
    keeper = LeaseKeeper(app.oasis.client, queue=model.queue, node=node, ttl_s=lease_ttl_s)
    # In a pod: high deletion cost while a task runs, low when idle; elsewhere off.
    cost = PodDeletionCost.from_env(environ())
    signals.install(recorder=app.oasis.recorder, keeper=keeper, cost=cost)

    def _stop_leases(**_: Any) -> None:
        keeper.stop()

    celery_signals.worker_shutdown.connect(_stop_leases, weak=False)
    keeper.start()
    logger.info("worker %s serving queue %s (concurrency %d)", node, model.queue, concurrency)
    argv = [
        "worker",
        "--queues",
        model.queue,
        "--hostname",
        node,
        "--pool",
        "solo" if concurrency == 1 else "prefork",
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--optimization",
        "fair",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        logging.getLevelName(logging.getLogger().getEffectiveLevel()),
    ]
    try:
        app.worker_main(argv)
    finally:
        keeper.stop()
