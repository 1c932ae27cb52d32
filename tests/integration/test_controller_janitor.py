"""The controller's janitor and main-task reconciliation against a real Redis.

Covers: an unacked message of a model queue with no live lease is restored, once, to the
list of its priority, marked redelivered; a message whose task holds a live lease, one
within the grace period, and one of a queue that is not a model queue stay unacked; the
main-task HASH is made equal to the records (stale fields dropped, missing ones added).
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import redis

from oasis_keda.core import keys
from oasis_keda.core.leases import LeaseKeeper
from oasis_keda.core.main_tasks import parse_main_task_value
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, Portfolio
from task_controller import records
from task_controller.app import janitor_queues, make_dispatcher, reconcile
from task_controller.janitor import UNACKED, UNACKED_INDEX, Janitor

QUEUE = keys.default_queue("m1")


def _unacked(
    client: redis.Redis, tag: str, task_id: str, *, queue: str, priority: int, age_s: float
) -> None:
    message = {
        "body": "e30=",
        "headers": {"id": task_id, "task": "t"},
        "properties": {
            "priority": priority,
            "delivery_tag": tag,
            "delivery_info": {"exchange": queue, "routing_key": queue},
        },
    }
    client.hset(UNACKED, tag, json.dumps([message, queue, queue]))
    client.zadd(UNACKED_INDEX, {tag: time.time() - age_s})


def test_restores_only_abandoned_messages(redis_client: redis.Redis) -> None:
    Registry(redis_client).register("m1")
    _unacked(redis_client, "dead", "task-dead", queue=QUEUE, priority=6, age_s=60)
    _unacked(redis_client, "live", "task-live", queue=QUEUE, priority=0, age_s=60)
    _unacked(redis_client, "young", "task-young", queue=QUEUE, priority=0, age_s=1)
    _unacked(redis_client, "other", "task-other", queue="celery", priority=0, age_s=60)
    keeper = LeaseKeeper(redis_client, queue=QUEUE, node="w1", ttl_s=30)
    keeper.task_started("task-live")
    janitor = Janitor(redis_client, queues=lambda: [QUEUE], grace_s=10)

    assert janitor.restore_abandoned() == 1
    assert janitor.restore_abandoned() == 0  # never twice
    restored = redis_client.lrange(f"{QUEUE}{keys.PRIORITY_SEP}6", 0, -1)
    assert len(restored) == 1
    message = json.loads(restored[0])
    assert message["headers"]["id"] == "task-dead"
    assert message["headers"]["redelivered"] is True
    assert sorted(k.decode() for k in redis_client.hkeys(UNACKED)) == ["live", "other", "young"]
    assert redis_client.zscore(UNACKED_INDEX, "dead") is None
    assert redis_client.llen(QUEUE) == 0

    keeper.task_done("task-live")  # its worker dies without acking: now it is abandoned
    assert janitor.restore_abandoned() == 1
    assert redis_client.llen(QUEUE) == 1


def test_main_tasks_are_reconciled_with_the_records(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    Registry(redis_client).register("m1")
    settings = Settings(
        redis_url=redis_url,
        storage_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    controller = make_dispatcher(settings)
    with controller.sessions.begin() as session:
        portfolio = Portfolio(name="p")
        session.add(portfolio)
        session.flush()
        running = Analysis(
            name="r",
            portfolio_id=portfolio.id,
            model_id="m1",
            status="RUN_STARTED",
            priority=7,
            run_number=2,
        )
        done = Analysis(name="d", portfolio_id=portfolio.id, model_id="m1", status="READY")
        session.add_all([running, done])
        session.flush()
        running_id, done_id = running.id, done.id
    # a crash left a finished stage counted and forgot a running one
    redis_client.hset(keys.main_tasks("m1"), f"{done_id}:inputs", "4")
    reconcile(controller)
    marks = redis_client.hgetall(keys.main_tasks("m1"))
    assert list(marks) == [f"{running_id}:losses".encode()]
    assert parse_main_task_value(marks[f"{running_id}:losses".encode()])[0] == 7
    assert janitor_queues(controller) == [QUEUE, keys.CONTROLLER_QUEUE]
    with controller.sessions() as session:
        assert records.reconcile_main_tasks(session, redis_client, ["m1"]) == (0, 0)
    controller.app.close()
    controller.client.close()
    gc.collect()
