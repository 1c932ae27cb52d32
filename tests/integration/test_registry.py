"""The model registry in Redis (oasis_keda.core.registry).

Covers: register with a derived or explicit queue (any id characters, including '-'),
re-register keeps configurations; get/get_by_pk/list; partial scaling and chunking
updates; a refused update names the field and leaves the stored record byte-identical;
concurrent partial updates lose nothing; the global worker limit set/unset/refused; every
change is announced on the model's activity channel.
"""

from __future__ import annotations

import threading

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.registry import Registry


def test_register_derives_queue_and_keeps_configs(redis_client: redis.Redis) -> None:
    registry = Registry(redis_client)
    record = registry.register("PiWind-v1.2/x y")
    assert record.queue == keys.default_queue("PiWind-v1.2/x y")
    registry.set_scaling("PiWind-v1.2/x y", {"worker_count_max": 3})
    again = registry.register("PiWind-v1.2/x y", supplier_id="OasisLMF")
    assert again.pk == record.pk
    assert again.supplier_id == "OasisLMF"
    assert again.scaling.worker_count_max == 3


def test_explicit_queue_and_lookups(redis_client: redis.Redis) -> None:
    registry = Registry(redis_client)
    a = registry.register("a", queue="custom")
    b = registry.register("b")
    assert registry.get("a").queue == "custom"
    assert registry.get_by_pk(b.pk).model_id == "b"
    assert [r.model_id for r in registry.list()] == ["a", "b"]
    assert a.pk != b.pk
    with pytest.raises(ModelNotFoundError, match="nope"):
        registry.get("nope")


def test_empty_model_id_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigError, match="model_id"):
        Registry(redis_client).register("  ")


def test_partial_updates(redis_client: redis.Redis) -> None:
    registry = Registry(redis_client)
    registry.register("m")
    registry.set_scaling("m", {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 4})
    scaling = registry.set_scaling("m", {"worker_count_max": 6})
    assert (scaling.scaling_strategy.value, scaling.chunks_per_worker) == ("DYNAMIC_TASKS", 4)
    chunking = registry.set_chunking("m", {"loss_strategy": "DYNAMIC_CHUNKS"})
    assert chunking.fixed_lookup_chunks == 1
    assert registry.get("m").chunking.loss_strategy.value == "DYNAMIC_CHUNKS"


@pytest.mark.parametrize(
    ("setter", "changes", "field"),
    [
        ("set_scaling", {"chunks_per_worker": 0}, "chunks_per_worker"),
        ("set_scaling", {"worker_count_min": 50}, "worker_count_min"),
        ("set_chunking", {"dynamic_chunks_max": 0}, "dynamic_chunks_max"),
        ("set_chunking", {"bogus": 1}, "bogus"),
    ],
)
def test_refused_update_leaves_record_unchanged(
    redis_client: redis.Redis, setter: str, changes: dict[str, int], field: str
) -> None:
    registry = Registry(redis_client)
    registry.register("m")
    before = redis_client.hget(keys.MODELS, "m")
    with pytest.raises(ConfigError) as info:
        getattr(registry, setter)("m", changes)
    assert field in info.value.fields
    assert redis_client.hget(keys.MODELS, "m") == before


def test_update_of_unknown_model(redis_client: redis.Redis) -> None:
    with pytest.raises(ModelNotFoundError):
        Registry(redis_client).set_scaling("ghost", {"worker_count_max": 1})


def test_concurrent_partial_updates_lose_nothing(redis_url: str) -> None:
    setup = redis.Redis.from_url(redis_url)
    Registry(setup).register("m")
    setup.close()
    fields = ["worker_count_fixed", "worker_count_max", "chunks_per_worker"]

    def update(field: str) -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            for value in range(1, 21):
                Registry(client).set_scaling("m", {field: value})
        finally:
            client.close()

    threads = [threading.Thread(target=update, args=(f,)) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = redis.Redis.from_url(redis_url)
    scaling = Registry(check).get("m").scaling
    check.close()
    assert [getattr(scaling, f) for f in fields] == [20, 20, 20]


def test_global_worker_limit(redis_client: redis.Redis) -> None:
    registry = Registry(redis_client)
    assert registry.global_worker_limit() is None
    registry.set_global_worker_limit(0)
    assert registry.global_worker_limit() == 0
    registry.set_global_worker_limit(12)
    assert registry.global_worker_limit() == 12
    for bad in (-1, True, 2.5):
        with pytest.raises(ConfigError, match="global_worker_limit"):
            registry.set_global_worker_limit(bad)  # type: ignore[arg-type]
    assert registry.global_worker_limit() == 12
    registry.set_global_worker_limit(None)
    assert registry.global_worker_limit() is None


def test_changes_are_announced(redis_client: redis.Redis) -> None:
    pubsub = redis_client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe(keys.activity_channel("*"))
    try:
        assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
        Registry(redis_client).register("m")
        message = pubsub.get_message(timeout=2)
        assert message is not None
        assert message["channel"] == keys.activity_channel("m").encode()
    finally:
        pubsub.close()
