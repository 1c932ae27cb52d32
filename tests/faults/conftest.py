"""The fault suite (``make test-faults``): each case starts the real processes on a Redis
server of its own, which a case may stop, kill and start again, and measures how long the
system takes to recover. Recovery times are appended to ``$OASIS_KEDA_FAULTS_REPORT`` (a
JSON-lines file) when that variable is set, for docs/RELIABILITY.md."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oasis_keda.runtime.embedded_redis import EmbeddedRedis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test only, without persistence."""
    server = EmbeddedRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test only, append-only with ``appendfsync everysec``."""
    server = EmbeddedRedis(persistent=True, data_dir=tmp_path / "redis-data")
    server.start()
    try:
        yield server
    finally:
        server.close()


def record(case: str, **figures: object) -> None:
    """Print a case's measured figures, and append them to the report file if asked."""
    line = json.dumps({"case": case, **figures}, sort_keys=True)
    print(line)
    target = os.environ.get("OASIS_KEDA_FAULTS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
