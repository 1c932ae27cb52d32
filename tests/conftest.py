"""Shared fixtures: a real Redis server for integration tests.

The server is the one named by ``OASIS_KEDA_REDIS_URL`` (``make test`` starts one), or an
embedded one started for the session. Each test that asks for ``redis_url`` gets a
flushed database. A test that runs registry commands of the CLI in this process asks for
``records_env``: its own records database, so that the registry's copy there (which the
CLI writes, and reads back when Redis has lost the registry) never leaks between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from oasis_keda.runtime.embedded_redis import EmbeddedRedis

TEST_DB = 9


@pytest.fixture
def records_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment naming a records database of this test only."""
    path = tmp_path_factory.mktemp("records") / "records.sqlite3"
    return {"OASIS_KEDA_DATABASE_URL": f"sqlite:///{path}"}


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    configured = os.environ.get("OASIS_KEDA_REDIS_URL")
    if configured:
        yield configured
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """URL of a flushed, dedicated database on the test Redis."""
    base = (
        redis_server_url.rsplit("/", 1)[0] if redis_server_url.count("/") > 2 else redis_server_url
    )
    url = f"{base}/{TEST_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url=redis_url)
    try:
        yield client
    finally:
        client.close()
