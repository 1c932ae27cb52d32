"""Celery app factory shared by the workers and the task controller.

One factory so both sides agree on the broker contract: JSON only, ``acks_late`` with
prefetch 1 and ``task_reject_on_worker_lost`` (a task killed with its worker goes back to
the queue, see the controller's janitor for prompt redelivery), the Redis result backend
(Celery's chord join on Redis is atomic and counts each header task once, so a redelivered
chunk cannot fire the next step early), and kombu's priority lists
(``<queue>\\x06\\x16<p>``, steps ``keys.PRIORITY_STEPS``, lower number served first).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis
from celery import Celery

from oasis_keda.core import keys
from oasis_keda.core.settings import Settings
from oasis_keda.core.storage import Storage
from worker.recording import Recorder

#: Analysis priority 1..10 (10 most urgent) -> kombu priority 0..9 (0 served first).
PRIORITY_MIN = 1
PRIORITY_MAX = 10
#: Visibility timeout of the Redis transport, seconds: kombu's own late fallback. kombu
#: restores any message unacked this long, even one a live worker is still running (a
#: duplicate run of a long chunk), so it is long; the janitor restores the messages of dead
#: workers within a lease TTL plus its grace period instead.
VISIBILITY_TIMEOUT_S = 24 * 3600
RESULT_EXPIRES_S = 7 * 24 * 3600


def broker_priority(priority: int) -> int:
    """Analysis priority (1-10, 10 highest) -> kombu Redis priority (0 highest, 9 lowest)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an integer 1-10, got {priority!r}")
    clamped = min(max(priority, PRIORITY_MIN), PRIORITY_MAX)
    return PRIORITY_MAX - clamped


@dataclasses.dataclass(kw_only=True)
class WorkerContext:
    """What task code needs besides its arguments; attached to the app as ``app.oasis``."""

    settings: Settings
    recorder: Recorder
    client: redis.Redis

    @property
    def storage(self) -> Storage:
        return self.recorder.storage


def make_context(settings: Settings) -> WorkerContext:
    client = redis.Redis.from_url(settings.redis_url)
    storage = Storage(settings.storage_dir)
    recorder = Recorder(
        database_url=settings.effective_database_url, client=client, storage=storage
    )
    return WorkerContext(settings=settings, recorder=recorder, client=client)


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        "task_create_missing_queues": True,
        "task_default_queue": keys.CONTROLLER_QUEUE,
        "result_expires": RESULT_EXPIRES_S,
        "result_extended": False,
        "broker_transport_options": {
            "priority_steps": list(keys.PRIORITY_STEPS),
            "sep": keys.PRIORITY_SEP,
            "queue_order_strategy": "priority",
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
        },
        "result_backend_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
    }


def make_app(settings: Settings, *, context: WorkerContext | None = None) -> Celery:
    """A Celery app with the worker tasks registered (the controller adds its own)."""
    from worker.tasks import register_tasks

    app = Celery("oasis_keda", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.oasis = context or make_context(settings)
    register_tasks(app)
    return app
