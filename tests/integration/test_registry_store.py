"""The model registry survives a Redis restart that loses its data: the records database
keeps it, the controller's sync rebuilds the Redis cache, and until then nothing answers as
if the models were unregistered (real Redis, a real records database, the real scaler over
gRPC and the real CLI).

Covers: every registry write reaches the database; after the Redis data is lost the scaler
answers UNAVAILABLE (not NOT_FOUND, not 0) and ``oasis-keda status`` exits non-zero naming
the missing models; the sync brings back models, configurations and the global worker
limit, and moves the primary-key counter past every known key; a change made in Redis only
(as the kubectl plugin does) is copied into the database; a copy that Redis lost newer
writes of is rolled forward; a deleted model found in an older Redis copy is dropped;
``oasis-keda status`` exits non-zero when Redis cannot be reached; a record that cannot
be read is left alone.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
import redis
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.cli import cli
from oasis_keda.core import keys
from oasis_keda.core.registry import Registry, RegistryStore
from oasis_keda.core.registry_store import is_loaded, missing_models, sync
from oasis_keda.core.store import make_engine, make_session_factory
from tests.scaler_support import metrics_request, running_scaler, scaler_stub


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'records.sqlite3'}"


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(db_url))


@pytest.fixture
def registry(redis_client: redis.Redis, sessions: sessionmaker[Session]) -> Registry:
    return Registry(redis_client, RegistryStore(sessions))


async def _status(redis_url: str, db_url: str) -> tuple[int, str]:
    """``oasis-keda status`` (in a thread: it runs its own event loop)."""

    def invoke() -> tuple[int, str]:
        result = CliRunner().invoke(
            cli,
            ["status", "--json"],
            env={"OASIS_KEDA_REDIS_URL": redis_url, "OASIS_KEDA_DATABASE_URL": db_url},
        )
        return result.exit_code, result.output

    return await asyncio.to_thread(invoke)


async def test_a_lost_registry_is_unavailable_until_rebuilt(
    registry: Registry, redis_client: redis.Redis, redis_url: str, db_url: str
) -> None:
    assert registry.store is not None
    registry.register("alpha")
    registry.register("beta")
    registry.set_scaling("beta", {"worker_count_fixed": 3})
    registry.set_global_worker_limit(7)
    assert set(registry.store.models()) == {"alpha", "beta"}
    assert (await _status(redis_url, db_url))[0] == 0

    redis_client.flushdb()  # what a restart without persistence leaves
    assert not is_loaded(redis_client)
    assert missing_models(redis_client, registry.store) == ["alpha", "beta"]
    code, output = await _status(redis_url, db_url)
    assert code != 0
    assert "lacks 2 model(s) the records database has: alpha, beta" in output

    async with (
        running_scaler(redis_url, snapshot_max_age_s=0.0) as server,
        scaler_stub(server.port) as stub,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetMetrics(metrics_request("beta"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "not rebuilt yet" in (info.value.details() or "")

        result = sync(redis_client, registry.store)
        assert (result.rebuilt, result.restored) == (True, 2)
        answer = await stub.GetMetrics(metrics_request("beta"))
        assert answer.metricValues[0].metricValue == 0  # no work: the minimum
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetMetrics(metrics_request("ghost"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND  # now truly unregistered

    assert registry.get("beta").scaling.worker_count_fixed == 3
    assert registry.global_worker_limit() == 7
    assert (await _status(redis_url, db_url))[0] == 0
    # the key counter is past every key the database knows: no key is handed out twice
    pks = {registry.get(m).pk for m in ("alpha", "beta")}
    assert registry.register("gamma").pk not in pks


def test_a_write_after_the_loss_rebuilds_first(
    registry: Registry, redis_client: redis.Redis
) -> None:
    first = registry.register("alpha").pk
    redis_client.flushdb()
    second = registry.register("beta").pk  # a store-aware writer syncs before writing
    assert second != first
    assert {m.model_id for m in registry.list()} == {"alpha", "beta"}


def test_changes_flow_both_ways_by_age(
    registry: Registry, redis_client: redis.Redis, sessions: sessionmaker[Session]
) -> None:
    store = RegistryStore(sessions)
    registry.register("alpha")
    registry.register("beta")
    # a Redis-only writer (the kubectl plugin) changes a configuration: copied to the DB
    Registry(redis_client).set_scaling("alpha", {"worker_count_max": 4})
    assert sync(redis_client, store).saved == 1
    assert json.loads(store.models()["alpha"].record)["scaling"]["worker_count_max"] == 4

    # Redis lost the last writes (a SIGKILL under appendfsync everysec): rolled forward
    old = redis_client.hget(keys.MODELS, "alpha")
    registry.set_scaling("alpha", {"worker_count_max": 6})
    assert old is not None
    redis_client.hset(keys.MODELS, "alpha", old)
    redis_client.hdel(keys.MODELS, "beta")
    result = sync(redis_client, store)
    assert (result.rebuilt, result.restored) == (False, 2)
    assert registry.get("alpha").scaling.worker_count_max == 6
    assert registry.get("beta").model_id == "beta"

    # a deleted model that an older Redis copy still holds is dropped, not resurrected
    stale = redis_client.hget(keys.MODELS, "beta")
    registry.delete("beta")
    assert stale is not None
    redis_client.hset(keys.MODELS, "beta", stale)
    assert sync(redis_client, store).dropped == 1
    assert {m.model_id for m in registry.list()} == {"alpha"}


def test_status_exits_non_zero_when_redis_is_unreachable(db_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    result = CliRunner().invoke(
        cli,
        ["status"],
        env={
            "OASIS_KEDA_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "OASIS_KEDA_DATABASE_URL": db_url,
        },
    )
    assert result.exit_code != 0
    assert "Error: Redis unreachable" in result.output


def test_an_unreadable_record_is_left_alone(
    registry: Registry, redis_client: redis.Redis, sessions: sessionmaker[Session]
) -> None:
    registry.register("alpha")
    redis_client.hset(keys.MODELS, "broken", "{ not json")
    result = sync(redis_client, RegistryStore(sessions))  # does not raise
    assert result.saved == 0
    assert redis_client.hget(keys.MODELS, "broken") == b"{ not json"
    assert "broken" not in RegistryStore(sessions).models()
