"""``kubectl oasis`` against a fake Kubernetes API server, a real scaler and a real Redis.

Covers: the current kubeconfig context (server, token, namespace) is used; ``status`` joins
the registry and queue state (Redis), the desired workers (the real gRPC scaler, asked as
KEDA asks it), replicas/ready pods (Deployments) and Ready/Active conditions (ScaledObjects),
as a table and as JSON; clear notes when the scaler is unreachable, when a ScaledObject
names a model the registry does not know, when the global budget caps a model, and when a
model has no Deployment; an unknown model on the command line is an error; ``models``
lists; ``scale-config`` shows, changes, refuses bad input naming the field (stored config
unchanged) and warns when the deployed ScaledObject no longer matches; the console script
runs as kubectl would run it; every API request is allowed by the status-reader Role and
the Role grants nothing unused.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import redis
import yaml
from click.testing import CliRunner

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings
from oasis_keda.kubectl.manifests import model_manifests
from oasis_keda.kubectl.plugin import cli
from scaler.server import ScalerServer
from scaler.settings import ScalerSettings
from tests.k8s_support import FakeKubeAPI, allowed, fake_kube_api, granted, role_rules, used

NS = "oasis"
TOKEN = "operator-token"
ROLE = "oasis-keda-status-reader"


class ThreadedScaler:
    """The real scaler on its own event loop in a thread (the plugin's gRPC is sync)."""

    def __init__(self, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.redis_url = redis_url
        self.server: ScalerServer | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self.thread.start()

        async def start() -> int:
            settings = ScalerSettings(redis_url=self.redis_url, host="127.0.0.1", port=0)
            self.server = ScalerServer(settings)
            return await self.server.start()

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        asyncio.run_coroutine_threadsafe(self.server.stop(grace_s=0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _register(client: redis.Redis, model_id: str, **scaling: Any) -> None:
    registry = Registry(client)
    registry.register(model_id)
    if scaling:
        registry.set_scaling(model_id, scaling)


def _deploy(
    api: FakeKubeAPI,
    client: redis.Redis,
    model_id: str,
    *,
    replicas: int,
    ready: int,
    active: bool,
    registered: bool = True,
) -> None:
    if registered:
        record = Registry(client).get(model_id)
    else:
        from oasis_keda.core.registry import ModelRecord

        record = ModelRecord(
            model_id=model_id,
            pk=99,
            queue=f"q.{model_id}",
            supplier_id="",
            model_name=model_id,
            version_id="",
        )
    dep, so = model_manifests(record, WorkerManifestSettings(namespace=NS))
    dep["spec"]["replicas"] = replicas
    dep["status"] = {"replicas": replicas, "readyReplicas": ready}
    so["status"] = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"},
            {"type": "Active", "status": "True" if active else "False", "reason": "ScalerActive"},
        ]
    }
    api.put("apps", "deployments", dep)
    api.put("keda.sh", "scaledobjects", so)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, Path]]:
    with fake_kube_api(token=TOKEN) as api:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "contexts": [
                {"name": "test", "context": {"cluster": "c", "user": "u", "namespace": NS}}
            ],
            "clusters": [{"name": "c", "cluster": {"server": api.url}}],
            "users": [{"name": "u", "user": {"token": TOKEN}}],
        }
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield api, path


def _run(args: list[str], kubeconfig: Path, redis_url: str | None, scaler: str | None) -> Any:
    base = ["--kubeconfig", str(kubeconfig)]
    if redis_url:
        base += ["--redis-url", redis_url]
    if scaler:
        base += ["--scaler", scaler]
    # The plugin reads these from the environment too: the test names everything itself.
    env = dict.fromkeys(["OASIS_KEDA_REDIS_URL", "OASIS_KEDA_SCALER_ADDRESS", "KUBECONFIG"])
    return CliRunner().invoke(cli, base + args, catch_exceptions=False, env=env)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _queue(client: redis.Redis, model_id: str, messages: int) -> None:
    queue = Registry(client).get(model_id).queue
    for i in range(messages):
        client.lpush(queue, json.dumps({"id": i}))


def test_status_joins_registry_scaler_and_cluster(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    _register(
        redis_client,
        "synth",
        scaling_strategy="DYNAMIC_TASKS",
        worker_count_max=4,
        chunks_per_worker=2,
    )
    _register(redis_client, "idle-model", scaling_strategy="QUEUE_LOAD", worker_count_max=3)
    _queue(redis_client, "synth", 6)
    _deploy(api, redis_client, "synth", replicas=3, ready=2, active=True)
    _deploy(api, redis_client, "idle-model", replicas=0, ready=0, active=False)
    with ThreadedScaler(redis_url) as scaler:
        result = _run(["-o", "json", "status"], kubeconfig, redis_url, f"127.0.0.1:{scaler.port}")
        table = _run(["status"], kubeconfig, redis_url, f"127.0.0.1:{scaler.port}")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    rows = {m["model_id"]: m for m in payload["models"]}
    synth = rows["synth"]
    assert synth["strategy"] == "DYNAMIC_TASKS"
    assert synth["queue_state"]["waiting"] == 6
    assert synth["desired_workers"] == 3  # ceil(6 / 2), from the scaler
    assert (synth["replicas"], synth["ready"]) == (3, 2)
    assert (synth["scaledobject_ready"], synth["scaledobject_active"]) == ("True", "True")
    assert synth["notes"] == []
    idle = rows["idle-model"]
    assert idle["desired_workers"] == 0
    assert idle["scaledobject_active"] == "False (ScalerActive)"
    assert payload["global_worker_limit"] is None

    assert table.exit_code == 0, table.output
    header, *lines = table.output.splitlines()
    assert header.split() == [
        "MODEL", "STRATEGY", "WAITING", "RUNNING", "BUSY", "MAIN", "DESIRED",
        "REPLICAS", "READY", "SO-READY", "SO-ACTIVE",
    ]  # fmt: skip
    synth_line = next(line for line in lines if line.startswith("synth "))
    assert synth_line.split()[:9] == ["synth", "DYNAMIC_TASKS", "6", "0", "0", "0", "3", "3", "2"]
    assert "global worker limit: none" in table.output


def test_status_explains_unreachable_unknown_capped_and_undeployed(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    _register(
        redis_client,
        "synth",
        scaling_strategy="DYNAMIC_TASKS",
        worker_count_max=4,
        chunks_per_worker=1,
    )
    _register(redis_client, "not-deployed")
    _queue(redis_client, "synth", 4)
    Registry(redis_client).set_global_worker_limit(2)
    redis_client.set(keys.REGISTRY_LOADED, "1")  # a whole registry: "ghost" is unregistered
    _deploy(api, redis_client, "synth", replicas=2, ready=2, active=True)
    _deploy(api, redis_client, "ghost", replicas=0, ready=0, active=False, registered=False)

    with ThreadedScaler(redis_url) as scaler:
        result = _run(["status"], kubeconfig, redis_url, f"127.0.0.1:{scaler.port}")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "synth: capped by the global worker budget: wants 4, granted 2" in out
    assert "global_worker_limit 2" in out
    assert "ghost: model unknown to the registry" in out
    assert "ghost: scaler error: NOT_FOUND" in out
    assert "not-deployed: no worker Deployment: oasis-keda manifests model not-deployed" in out
    assert "global worker limit: 2" in out

    unreachable = _run(["status"], kubeconfig, redis_url, f"127.0.0.1:{_closed_port()}")
    assert unreachable.exit_code == 0, unreachable.output
    assert "scaler unreachable at 127.0.0.1:" in unreachable.output
    assert "(UNAVAILABLE: " in unreachable.output
    assert "KEDA serves each ScaledObject's fallback" in unreachable.output
    assert unreachable.output.count("unreachable") == 1

    no_scaler = _run(["status"], kubeconfig, redis_url, None)
    assert "scaler error: no --scaler address given" in no_scaler.output


def test_status_of_an_unknown_model_is_an_error(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    _, kubeconfig = kube
    _register(redis_client, "synth")
    result = _run(["status", "nope"], kubeconfig, redis_url, None)
    assert result.exit_code == 1
    assert "model(s) unknown: nope" in result.output


def test_status_without_redis_still_shows_the_cluster(
    kube: tuple[FakeKubeAPI, Path], redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    _register(redis_client, "synth")
    _deploy(api, redis_client, "synth", replicas=1, ready=1, active=True)
    result = _run(["status"], kubeconfig, None, None)
    assert result.exit_code == 0, result.output
    assert "registry not read (no --redis-url)" in result.output
    assert result.output.splitlines()[1].split()[:2] == ["synth", "-"]


def test_status_says_when_keda_is_missing(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    api.missing_resources.add(("keda.sh", "scaledobjects"))
    _register(redis_client, "synth")
    result = _run(["status"], kubeconfig, redis_url, None)
    assert result.exit_code == 0, result.output
    assert "KEDA is not installed" in result.output


def test_bad_credentials_are_a_clear_error(kube: tuple[FakeKubeAPI, Path], redis_url: str) -> None:
    api, kubeconfig = kube
    api.tokens = {"other"}
    result = _run(["status"], kubeconfig, redis_url, None)
    assert result.exit_code == 1
    assert "cannot read the cluster: Kubernetes API error 401 Unauthorized" in result.output


def test_models_and_scale_config(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    _register(redis_client, "synth", scaling_strategy="DYNAMIC_TASKS", worker_count_max=4)
    _deploy(api, redis_client, "synth", replicas=0, ready=0, active=False)

    listing = _run(["models"], kubeconfig, redis_url, None)
    assert listing.exit_code == 0, listing.output
    assert listing.output.splitlines()[1].split()[:4] == [
        "synth", "1", "oasis-keda.model.synth", "DYNAMIC_TASKS",
    ]  # fmt: skip

    shown = _run(["scale-config", "synth"], kubeconfig, redis_url, None)
    assert json.loads(shown.output)["worker_count_max"] == 4

    changed = _run(
        ["scale-config", "synth", "--set", '{"worker_count_max": 6}'], kubeconfig, redis_url, None
    )
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.output.split("ScaledObject")[0])["worker_count_max"] == 6
    assert "ScaledObject has min/max 0/4, configuration says 0/6" in changed.output
    assert "oasis-keda manifests model synth | kubectl apply -f -" in changed.output
    assert Registry(redis_client).get("synth").scaling.worker_count_max == 6

    refused = _run(
        ["scale-config", "synth", "--set", '{"worker_count_min": 9}'], kubeconfig, redis_url, None
    )
    assert refused.exit_code == 1
    assert "refused, nothing changed" in refused.output and "worker_count_min" in refused.output
    assert Registry(redis_client).get("synth").scaling.worker_count_min == 0

    unknown = _run(["scale-config", "nope"], kubeconfig, redis_url, None)
    assert unknown.exit_code == 1 and "'nope' is not registered" in unknown.output
    bad_json = _run(["scale-config", "synth", "--set", "{"], kubeconfig, redis_url, None)
    assert bad_json.exit_code == 1 and "--set is not valid JSON" in bad_json.output
    no_redis = _run(["models"], kubeconfig, None, None)
    assert no_redis.exit_code == 1 and "pass --redis-url" in no_redis.output


def test_the_console_script_runs_as_kubectl_runs_plugins(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    _register(redis_client, "synth")
    _deploy(api, redis_client, "synth", replicas=0, ready=0, active=False)
    script = Path(sys.executable).parent / "kubectl-oasis"
    if not script.exists():
        pytest.skip("kubectl-oasis console script not installed (pip install -e .)")
    done = subprocess.run(
        [str(script), "status"],
        check=False,
        env={"KUBECONFIG": str(kubeconfig), "OASIS_KEDA_REDIS_URL": redis_url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:2] == ["synth", "FIXED_WORKERS"]


def test_status_reader_role_allows_exactly_what_the_plugin_calls(
    kube: tuple[FakeKubeAPI, Path], redis_url: str, redis_client: redis.Redis
) -> None:
    api, kubeconfig = kube
    _register(redis_client, "synth")
    _deploy(api, redis_client, "synth", replicas=0, ready=0, active=False)
    for args in (
        ["status"],
        ["models"],
        ["scale-config", "synth", "--set", '{"worker_count_fixed": 2}'],
    ):
        assert _run(args, kubeconfig, redis_url, None).exit_code == 0
    rules = role_rules(ROLE)
    assert all(allowed(rules, r) for r in api.requests), api.requests
    assert used(api.requests) == granted(rules)
    assert {r.namespace for r in api.requests} == {NS}
