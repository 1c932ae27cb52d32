"""The CLI and the REST API refuse the same out-of-range configuration values with the same
message, and neither stores anything (real Redis, a real API server, the real CLI).

Covers: worker counts past MAX_WORKERS (10**14 as in a user's typo, 3e9 written out), chunk
counts past MAX_CHUNKS (10**30 written out), chunks_per_worker 0 and past its maximum; the
global worker limit past MAX_WORKERS; the stored configuration unchanged after each.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core.config import MAX_WORKERS
from oasis_keda.core.registry import Registry
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401

CASES = [
    ("scaling", {"worker_count_fixed": 100_000_000_000_000}, "worker_count_fixed"),
    ("scaling", {"worker_count_max": 3_000_000_000}, "worker_count_max"),
    ("scaling", {"chunks_per_worker": 0}, "chunks_per_worker"),
    ("scaling", {"chunks_per_worker": 10_001}, "chunks_per_worker"),
    ("chunking", {"fixed_analysis_chunks": 10**30}, "fixed_analysis_chunks"),
    ("chunking", {"dynamic_chunks_max": 10_001}, "dynamic_chunks_max"),
]


@pytest.mark.parametrize(("kind", "body", "field"), CASES)
def test_cli_and_api_refuse_alike(
    api_server: ApiServer,
    redis_url: str,
    redis_client: redis.Redis,
    kind: str,
    body: dict[str, Any],
    field: str,
    records_env: dict[str, str],
) -> None:
    registry = Registry(redis_client)
    registry.register("m1", supplier_id="S", model_name="M", version_id="1")
    before = registry.get("m1")

    r = api_server.session().post(
        f"{api_server.url}/v2/models/1/{kind}_configuration/", json=body, timeout=5
    )
    assert r.status_code == 400
    api_message = r.json()[field]

    result = CliRunner().invoke(
        cli,
        ["models", kind, "m1", "--set", json.dumps(body)],
        env={"OASIS_KEDA_REDIS_URL": redis_url, **records_env},
    )
    assert result.exit_code != 0
    assert f"{field}: {api_message}" in result.output
    assert "stored configuration unchanged" in result.output

    after = registry.get("m1")
    assert (after.scaling, after.chunking) == (before.scaling, before.chunking)


def test_the_global_worker_limit_is_bounded(
    redis_url: str, redis_client: redis.Redis, records_env: dict[str, str]
) -> None:
    def run(*args: str) -> Any:
        env = {"OASIS_KEDA_REDIS_URL": redis_url, **records_env}
        return CliRunner().invoke(cli, list(args), env=env)

    assert run("settings", "global-worker-limit", str(MAX_WORKERS)).exit_code == 0
    refused = run("settings", "global-worker-limit", str(MAX_WORKERS + 1))
    assert refused.exit_code != 0
    assert f"global_worker_limit: must be at most {MAX_WORKERS}" in refused.output
    assert Registry(redis_client).global_worker_limit() == MAX_WORKERS
