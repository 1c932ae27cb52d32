"""``oasis-keda models``, ``settings`` and ``status`` through click against a real Redis.

Covers: register (derived queue, --queue, --model-dir identity defaults and run options as
oasislmf loads them, a bad model dir or run option is a clear error and leaves the stored
model unchanged); show --json; list; scaling/chunking print and partial --set; a refused
--set exits non-zero naming the field and leaves the stored value unchanged; invalid JSON;
unknown model; global-worker-limit set/show/unset; status rows computed by the scaler code.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from oasis_keda.cli import cli
from oasis_keda.core import keys
from oasis_keda.runtime.synth import write_synthetic_model
from tests.shared_data import PIWIND

Invoke = Callable[..., Result]


@pytest.fixture
def run(redis_url: str, records_env: dict[str, str]) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, list(args), env={"OASIS_KEDA_REDIS_URL": redis_url, **records_env}
        )

    return invoke


def test_register_show_list(run: Invoke, redis_client: redis.Redis) -> None:
    r = run("models", "register", "my-model")
    assert r.exit_code == 0, r.output
    r = run("models", "register", "other", "--queue", "q2", "--supplier", "S")
    assert r.exit_code == 0, r.output
    shown = json.loads(run("models", "show", "my-model", "--json").output)
    assert shown["model_id"] == "my-model"
    assert shown["queue"] == keys.default_queue("my-model")
    assert shown["scaling"]["scaling_strategy"] == "FIXED_WORKERS"
    assert shown["chunking"]["fixed_lookup_chunks"] == 1
    listed = json.loads(run("models", "list", "--json").output)
    assert [m["model_id"] for m in listed] == ["my-model", "other"]
    assert "q2" in run("models", "list").output


def test_scaling_set_partial_and_refused(run: Invoke, redis_client: redis.Redis) -> None:
    run("models", "register", "m")
    r = run("models", "scaling", "m", "--set", '{"scaling_strategy": "DYNAMIC_TASKS"}')
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["scaling_strategy"] == "DYNAMIC_TASKS"
    before = redis_client.hget(keys.MODELS, "m")
    r = run("models", "scaling", "m", "--set", '{"chunks_per_worker": 0}')
    assert r.exit_code != 0
    assert "chunks_per_worker" in r.output
    assert redis_client.hget(keys.MODELS, "m") == before
    r = run("models", "scaling", "m", "--set", "{not json")
    assert r.exit_code != 0 and "invalid JSON" in r.output
    r = run("models", "scaling", "m", "--set", "[1]")
    assert r.exit_code != 0 and "JSON object" in r.output
    current = json.loads(run("models", "scaling", "m").output)
    assert current["scaling_strategy"] == "DYNAMIC_TASKS"
    assert current["chunks_per_worker"] == 10


def test_chunking_set(run: Invoke) -> None:
    run("models", "register", "m")
    r = run("models", "chunking", "m", "--set", '{"fixed_analysis_chunks": 4}')
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["fixed_analysis_chunks"] == 4
    r = run("models", "chunking", "m", "--set", '{"lookup_strategy": "SOMETIMES"}')
    assert r.exit_code != 0 and "lookup_strategy" in r.output


def test_unknown_model(run: Invoke) -> None:
    for args in (("show", "ghost", "--json"), ("scaling", "ghost"),
                 ("chunking", "ghost", "--set", "{}")):  # fmt: skip
        r = run("models", *args)
        assert r.exit_code != 0 and "ghost" in r.output


def test_bad_model_dir_is_a_clear_error(run: Invoke, tmp_path: Path) -> None:
    r = run("models", "register", "m", "--model-dir", str(tmp_path))
    assert r.exit_code != 0
    assert "oasislmf.json" in r.output


@pytest.mark.skipif(not PIWIND.exists(), reason="PiWind reference data not present")
def test_identity_from_model_dir(run: Invoke) -> None:
    r = run("models", "register", "pw", "--model-dir", str(PIWIND), "--version", "9")
    assert r.exit_code == 0, r.output
    shown = json.loads(run("models", "show", "pw", "--json").output)
    assert shown["supplier_id"] == "OasisLMF"
    assert shown["model_name"] == "PiWind"
    assert shown["version_id"] == "9"
    # PiWind's config asks for GUL allocation rule 1 under the old key name
    assert shown["run_options"]["kernel_alloc_rule_gul"] == 1
    assert any("'modelpy'" in w for w in shown["run_option_warnings"])
    assert "modelpy" in r.output  # oasislmf's warning, shown at registration


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"kernel_alloc_rule_gul": "x"}, "'kernel_alloc_rule_gul' must be an integer, got 'x'"),
        ({"kernel_alloc_rule_gul": 7}, "kernel_alloc_rule_gul=7 - Not within valid ranges"),
    ],
)
def test_bad_run_option_refused_and_stored_model_unchanged(
    run: Invoke, redis_client: redis.Redis, tmp_path: Path, option: dict[str, object], message: str
) -> None:
    good = write_synthetic_model(tmp_path / "model", locations=3, events=3)
    assert run("models", "register", "m", "--model-dir", str(good.root)).exit_code == 0
    before = redis_client.hget(keys.MODELS, "m")
    config = json.loads(good.config_path.read_text())
    bad = tmp_path / "bad"
    shutil.copytree(good.root, bad)
    (bad / "oasislmf.json").write_text(json.dumps({**config, **option}))
    r = run("models", "register", "m", "--model-dir", str(bad))
    assert r.exit_code != 0
    assert message in r.output
    assert redis_client.hget(keys.MODELS, "m") == before


def test_global_worker_limit(run: Invoke) -> None:
    assert "unset" in run("settings", "global-worker-limit").output
    assert "7" in run("settings", "global-worker-limit", "7").output
    assert "7" in run("settings", "global-worker-limit").output
    assert run("settings", "global-worker-limit", "-- -1").exit_code != 0
    assert "unset" in run("settings", "global-worker-limit", "--unset").output


def test_status_rows(run: Invoke, redis_client: redis.Redis) -> None:
    run("models", "register", "a")
    run("models", "register", "b")
    config = '{"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2}'
    run("models", "scaling", "a", "--set", config)
    redis_client.lpush(keys.default_queue("a"), *range(5))
    redis_client.hset(keys.main_tasks("a"), "an-1:losses", "5")
    r = run("status", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    rows = {row["model_id"]: row for row in data["models"]}
    assert rows["a"]["waiting"] == 5
    assert rows["a"]["main_tasks"] == 1
    assert rows["a"]["desired"] == 3
    assert rows["b"]["desired"] == 0
    assert rows["a"]["actual"] is None  # no local runtime publishes replicas
    # The local runtime's autoscaler publishes desired and actual replicas per model.
    redis_client.hset(keys.RUNTIME_REPLICAS, "a", json.dumps({"desired": 3, "actual": 2}))
    rows = {row["model_id"]: row for row in json.loads(run("status", "--json").output)["models"]}
    assert (rows["a"]["replicas"], rows["a"]["actual"]) == (3, 2)
    table = run("status")
    assert table.exit_code == 0 and "DYNAMIC_TASKS" in table.output
