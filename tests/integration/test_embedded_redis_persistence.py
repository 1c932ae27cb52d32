"""The local runtime's Redis keeps its data across restarts: append-only, fsynced every
second (a real ``redis-server``).

Covers: a clean restart (SIGTERM) keeps the last write; a SIGKILL keeps what was written
more than a second before it; without persistence (tests, benchmarks) a restart keeps
nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from oasis_keda.runtime.embedded_redis import EmbeddedRedis


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def test_a_clean_restart_loses_nothing(tmp_path: Path) -> None:
    server = EmbeddedRedis(persistent=True, data_dir=tmp_path / "redis")
    server.start()
    try:
        client = _client(server)
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("kept", "1")
        client.close()
        server.stop()
        server.start()
        client = _client(server)
        assert client.get("kept") == b"1"
        client.close()
    finally:
        server.close()
    assert (tmp_path / "redis").is_dir()  # a given directory outlives the server


def test_a_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    server = EmbeddedRedis(persistent=True, data_dir=tmp_path / "redis")
    server.start()
    try:
        client = _client(server)
        client.set("old", "1")
        time.sleep(1.5)  # past one fsync
        client.close()
        server.kill()
        server.start()
        client = _client(server)
        assert client.get("old") == b"1"
        client.close()
    finally:
        server.close()


def test_without_persistence_a_restart_keeps_nothing() -> None:
    with EmbeddedRedis() as server:
        client = _client(server)
        client.set("lost", "1")
        client.close()
        server.stop()
        server.start()
        client = _client(server)
        assert client.get("lost") is None
        client.close()
