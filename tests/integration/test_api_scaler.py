"""A model configured over HTTP is the model the scaler sees.

Covers: a model registered with the CLI (``oasis-keda models register``) is found by the
official client; posting ``scaling_configuration`` through the API changes the real gRPC
scaler's next answer for that model; a refused configuration leaves the answer unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import requests
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core.main_tasks import set_main_task
from oasis_keda.runtime.synth import write_synthetic_model
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401
from tests.scaler_support import desired, running_scaler, scaler_stub


async def test_scaling_posted_over_http_changes_the_scalers_next_answer(
    api_server: ApiServer,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    records_env: dict[str, str],
) -> None:
    model_dir = write_synthetic_model(tmp_path / "model", locations=3, events=5).root
    result = CliRunner().invoke(
        cli,
        ["models", "register", "synth", "--model-dir", str(model_dir), "--redis-url", redis_url],
        env=records_env,
    )
    assert result.exit_code == 0, result.output
    client = api_server.client()
    [model] = client.models.search({"supplier_id": "OasisKeda", "model_id": "Synth"}).json()
    assert (model["id"], model["version_id"]) == (1, "1")
    set_main_task(redis_client, "synth", 1, "losses", 4)  # work in progress on the model

    async with running_scaler(redis_url) as server, scaler_stub(server.port) as stub:
        assert await desired(stub, "synth") == 1  # FIXED_WORKERS, worker_count_fixed=1
        client.models.scaling_configuration.post(1, {"worker_count_fixed": 3})
        assert await desired(stub, "synth") == 3
        with pytest.raises(requests.HTTPError):
            client.models.scaling_configuration.post(1, {"worker_count_fixed": "lots"})
        assert await desired(stub, "synth") == 3
        client.models.scaling_configuration.post(
            1, {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 5}
        )
        assert await desired(stub, "synth") == 1  # one main task in progress
