"""Task and busy leases (oasis_keda.core.leases) against a real Redis.

Covers: reserved/started/done bookkeeping per node; busy while any task runs; stop()
deletes the node's leases; leases of a live process stay counted across several TTLs
(heartbeat), those of a process killed with SIGKILL stop counting within one TTL; a Redis
restart does not kill the heartbeat (leases come back); concurrent calls from many threads
leave a consistent state; the scaler's reader trims expired members.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.leases import LeaseKeeper
from oasis_keda.runtime.embedded_redis import EmbeddedRedis

QUEUE = "oasis-keda.model.lease-test"
TASKS = keys.leases_tasks(QUEUE)
BUSY = keys.leases_busy(QUEUE)


def live(client: redis.Redis, key: str) -> list[str]:
    """Members whose deadline (ms, Redis time) is still ahead."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    members = client.zrangebyscore(key, f"({now_ms}", "+inf")
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


def wait_until(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_reserved_started_done(redis_client: redis.Redis) -> None:
    keeper = LeaseKeeper(redis_client, queue=QUEUE, node="w1", ttl_s=30)
    keeper.task_reserved("a")
    keeper.task_reserved("b")
    assert live(redis_client, TASKS) == ["w1|a", "w1|b"]
    assert live(redis_client, BUSY) == []
    keeper.task_started("a")
    assert live(redis_client, BUSY) == ["w1"]
    keeper.task_started("b")
    keeper.task_done("a")
    assert live(redis_client, BUSY) == ["w1"]  # b still runs
    keeper.task_done("b")
    assert live(redis_client, TASKS) == []
    assert live(redis_client, BUSY) == []


def test_stop_deletes_the_nodes_leases(redis_client: redis.Redis) -> None:
    mine = LeaseKeeper(redis_client, queue=QUEUE, node="mine", ttl_s=30)
    other = LeaseKeeper(redis_client, queue=QUEUE, node="other", ttl_s=30)
    mine.start()
    mine.task_started("t1")
    other.task_started("t2")
    mine.stop()
    assert live(redis_client, TASKS) == ["other|t2"]
    assert live(redis_client, BUSY) == ["other"]


def test_refresh_drops_members_the_node_no_longer_holds(redis_client: redis.Redis) -> None:
    keeper = LeaseKeeper(redis_client, queue=QUEUE, node="w", ttl_s=30)
    redis_client.zadd(TASKS, {"w|stale": time.time() * 1000 + 60_000})
    keeper.task_reserved("t")
    keeper.refresh()
    assert live(redis_client, TASKS) == ["w|t"]


def test_bad_arguments_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        LeaseKeeper(redis_client, queue=QUEUE, node="w", ttl_s=0)
    with pytest.raises(ValueError, match="node"):
        LeaseKeeper(redis_client, queue=QUEUE, node="a|b")


WORKER = """
import sys, time, redis
from oasis_keda.core.leases import LeaseKeeper
keeper = LeaseKeeper(redis.Redis.from_url(sys.argv[1]), queue=sys.argv[2], node="victim",
                     ttl_s=float(sys.argv[3]))
keeper.start()
keeper.task_reserved("t1")
keeper.task_started("t1")
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def victim(redis_url: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, redis_url, QUEUE, "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_sigkilled_worker_stops_counting_within_one_ttl(
    redis_client: redis.Redis, victim: subprocess.Popen[str]
) -> None:
    assert live(redis_client, BUSY) == ["victim"]
    time.sleep(2.5)  # several TTLs: the heartbeat keeps a live process counted
    assert live(redis_client, BUSY) == ["victim"]
    assert live(redis_client, TASKS) == ["victim|t1"]
    victim.kill()  # SIGKILL: no clean-up code runs
    victim.wait()
    # The last deadline written was at most one TTL (1 s) ahead; allow for a slow machine.
    wait_until(lambda: not live(redis_client, BUSY) and not live(redis_client, TASKS), 5.0)


def test_heartbeat_survives_a_redis_restart() -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        keeper = LeaseKeeper(client, queue=QUEUE, node="w", ttl_s=0.6)
        keeper.start()
        try:
            keeper.task_started("t")
            server.stop()
            time.sleep(0.5)  # heartbeats fail meanwhile; they must log, not die
            server.start()  # empty data
            wait_until(lambda: live(client, BUSY) == ["w"])
            assert live(client, TASKS) == ["w|t"]
            assert keeper._thread is not None and keeper._thread.is_alive()
        finally:
            keeper.stop()
            client.close()


def test_concurrent_calls_leave_a_consistent_state(redis_client: redis.Redis) -> None:
    keeper = LeaseKeeper(redis_client, queue=QUEUE, node="w", ttl_s=30)
    keeper.start()

    def run(n: int) -> None:
        for i in range(30):
            task = f"{n}-{i}"
            keeper.task_reserved(task)
            keeper.task_started(task)
            keeper.refresh()
            keeper.task_done(task)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert live(redis_client, TASKS) == []
    assert live(redis_client, BUSY) == []
    keeper.stop()


async def test_scaler_reader_counts_live_and_trims_expired(
    redis_url: str, redis_client: redis.Redis
) -> None:
    from oasis_keda.core.registry import Registry
    from scaler.state import StateReader, make_client

    queue = Registry(redis_client).register("m", queue=QUEUE).queue
    keeper = LeaseKeeper(redis_client, queue=queue, node="alive", ttl_s=30)
    keeper.task_started("t")
    redis_client.zadd(TASKS, {"dead|x": 1})  # deadline long past
    redis_client.zadd(BUSY, {"dead": 1})
    client = make_client(redis_url, timeout_s=2)
    try:
        state = (await StateReader(client).read("m")).models["m"].state
    finally:
        await client.aclose()
    assert (state.reserved, state.busy) == (1, 1)
    assert redis_client.zcard(TASKS) == 1 and redis_client.zcard(BUSY) == 1
