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
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from oasis_keda.cli import environ, metrics_port_option
from oasis_keda.core.errors import ModelNotFoundError
from oasis_keda.core.leases import DEFAULT_TTL_S, LeaseKeeper
from oasis_keda.core.metrics import serve as serve_metrics
from oasis_keda.core.settings import Settings
from worker import scratch, warmup

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
@click.option(
    "--warm/--no-warm",
    default=None,
    help="Import oasislmf in the background from the start (default: when the model has a "
    "model directory).",
)
@click.option(
    "--ready-file",
    envvar="OASIS_KEDA_WORKER_READY_FILE",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Written once Celery consumes and the warm-up is done, removed at shutdown "
    "(the readiness probe's file; OASIS_KEDA_WORKER_READY_FILE).",
)
@metrics_port_option
def serve(
    model_id: str,
    concurrency: int,
    redis_url: str | None,
    storage_dir: str | None,
    database_url: str | None,
    lease_ttl_s: float,
    warm: bool | None,
    ready_file: Path | None,
    metrics_port: int,
) -> None:
    """Consume MODEL's queue until SIGTERM (warm shutdown)."""
    from worker.oasis_env import prepare_process

    prepare_process()  # the persistent numba cache, before anything imports numba
    from oasis_keda.core.registry import Registry
    from worker.app import make_app

    settings = Settings.from_env(environ()).replace(
        redis_url=redis_url, storage_dir=storage_dir, database_url=database_url
    )
    app = make_app(settings)
    try:
        model = Registry(app.oasis.client).get(model_id)
    except ModelNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    # The heavy imports in the background while this thread registers and starts Celery.
    started = warmup.start(
        ready_file=ready_file, imports=bool(model.model_dir) if warm is None else warm
    )
    node = scratch.node_name(model_id, os.getpid(), socket.gethostname())
    # Live from here: the global worker limit counts this process from its first second,
    # through the heavy imports below, until it exits.
    keeper = LeaseKeeper(app.oasis.client, queue=model.queue, node=node, ttl_s=lease_ttl_s)
    keeper.start()
    tmp = scratch.claim(node)
    serve_metrics(metrics_port, what="worker metrics")
    code: int | str | None = 0
    try:
        _serve(app, model.queue, node, keeper, concurrency, started)
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        logger.exception("worker %s failed", node)
        code = 1
    _exit(keeper, tmp, code)


def _exit(keeper: LeaseKeeper, tmp: Path, code: int | str | None) -> NoReturn:
    """End the process right after its live lease is dropped.

    Interpreter teardown (thread joins, module finalizers) can take seconds; a worker that
    no longer counts against the global limit must not linger meanwhile, so the lease goes
    last and the process ends at once.
    """
    scratch.release(tmp)
    warmup.current().clear_ready()
    status = code if isinstance(code, int) else (0 if code is None else 1)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    keeper.stop()
    os._exit(status)


def _serve(
    app: Any,
    queue: str,
    node: str,
    keeper: LeaseKeeper,
    concurrency: int,
    started: warmup.WarmUp,
) -> None:
    from worker import signals
    from worker.deletion_cost import PodDeletionCost

    if concurrency > 1:
        # A prefork pool forks its children now: no import may be half done in another
        # thread (a child would wait forever for its lock), and the children inherit them.
        started.wait_all()
    started.connect_celery()
    # In a pod: high deletion cost while a task runs, low when idle; elsewhere off.
    cost = PodDeletionCost.from_env(environ())
    signals.install(recorder=app.oasis.recorder, keeper=keeper, cost=cost)
    logger.info("worker %s serving queue %s (concurrency %d)", node, queue, concurrency)
    argv = [
        "worker",
        "--queues",
        queue,
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
    app.worker_main(argv)
