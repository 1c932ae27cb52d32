"""The global worker limit under load, through ``oasis-keda up`` as a user runs it.

Three synthetic models (200 locations, 80 events; 4 lookup and 4 loss chunks each): m1
DYNAMIC_TASKS with 2 chunks per worker and at most 3 workers, m2 QUEUE_LOAD with at most 2,
m3 FIXED_WORKERS 1; a global limit of 4; 15 analyses (5 per model) sent to the REST API's
``generate_and_run`` within about a second. Run twice: without faults, and with a scaler
SIGKILL and a busy worker SIGKILL (once the workers reach the limit, or a third of the way through
the analyses at the latest). Sampling the real processes every 0.5 s, it checks that
live workers never exceed the limit, that no model with unfinished work is left without a
worker for longer than a sub-task's duration (plus a polling interval and a worker's
start) after its first worker started, that no model with work and a fair share of at
least 1 is cut to 0 (or waits at 0 longer than that), that ``up`` restarts the scaler,
that every analysis completes with outputs equal to oasislmf's own run of its model, and
that no temporary folder is left after shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.runtime.embedded_redis import free_port
from oasis_keda.runtime.supervisor import cli_command
from oasis_keda.runtime.synth import write_synthetic_model
from tests import oracle
from tests.load_support import (
    Sampler,
    children,
    register_models,
    scaler_answers,
    starved_answers,
    submit,
    unfinished_counter,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LIMIT = 4
PER_MODEL = 5
POLLING_S = 1.0
#: A worker process's start (interpreter, Celery, Redis) before it takes a task.
START_S = 3.0
SCALING = {
    "m1": {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "worker_count_max": 3},
    "m2": {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 2},
    "m3": {"scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 1},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("load-models")
    out = {}
    for seed, model in enumerate(SCALING, start=1):
        write_synthetic_model(root / model, locations=200, events=80, seed=seed)
        out[model] = root / model
    return out


@pytest.fixture(scope="module")
def oracles(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("load-oracles")
    return {
        model: oracle.oracle_run(
            path,
            location=path / "location.csv",
            accounts=path / "account.csv",
            settings=path / "analysis_settings.json",
            run_dir=root / model,
        ).output_dir
        for model, path in models.items()
    }


@pytest.fixture
def stack(redis_url: str, tmp_path: Path, models: dict[str, Path]) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    register_models(client, models, SCALING, LIMIT)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "OASIS_KEDA_REDIS_URL": redis_url,
        "OASIS_KEDA_STORAGE_DIR": str(tmp_path / "storage"),
        "OASIS_KEDA_AUTOSCALER_POLLING_INTERVAL_S": str(int(POLLING_S)),
        "TMPDIR": str(scratch),
    }
    out = (tmp_path / "up.out").open("wb")
    up = subprocess.Popen(
        [*cli_command(), "up", "--api-port", str(port)], env=env, stdout=out, stderr=out
    )
    try:
        deadline = time.monotonic() + 120
        while "Running" not in (tmp_path / "up.out").read_text(errors="replace"):
            assert up.poll() is None and time.monotonic() < deadline, (
                tmp_path / "up.out"
            ).read_text()
            time.sleep(0.2)
        yield {
            "up": up,
            "url": f"http://127.0.0.1:{port}",
            "client": client,
            "env": env,
            "tmp": tmp_path,
            "scratch": scratch,
        }
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        out.close()
        registry = Registry(client)
        registry.set_global_worker_limit(None)
        for model in models:
            registry.delete(model)
        client.close()


def _busy_worker(client: redis.Redis, model: str) -> int | None:
    queue = Registry(client).get(model).queue
    for node in client.zrange(keys.leases_busy(queue), 0, -1):
        pid = node.decode().split("@", 1)[0].rsplit(".", 1)[-1]
        if pid.isdigit():
            return int(pid)
    return None


def _longest_sub_task(url: str, ids: dict[int, str]) -> float:
    from oasislmf.platform_api.client import APIClient

    api = APIClient(api_url=url, username="admin", password="password")
    longest = 0.0
    for analysis_id in ids:
        for task in api.analyses.sub_task_list(analysis_id).json():
            if task.get("start_time") and task.get("end_time"):
                start = time.mktime(time.strptime(task["start_time"][:19], "%Y-%m-%dT%H:%M:%S"))
                end = time.mktime(time.strptime(task["end_time"][:19], "%Y-%m-%dT%H:%M:%S"))
                longest = max(longest, end - start + 1)  # whole seconds: round up
    return longest


def _check_outputs(url: str, ids: dict[int, str], oracles: dict[str, Path], out: Path) -> None:
    from oasislmf.platform_api.client import APIClient

    api = APIClient(api_url=url, username="admin", password="password")
    for analysis_id, model in ids.items():
        archive = out / f"{analysis_id}.tar.gz"
        archive.write_bytes(api.analyses.output_file.get(analysis_id).content)
        folder = out / f"out-{analysis_id}"
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        oracle.assert_outputs_equal(folder, oracles[model], note=f"analysis {analysis_id}")


@pytest.mark.parametrize("faults", [False, True], ids=["no-faults", "scaler-and-worker-sigkill"])
def test_the_limit_holds_under_load(
    stack: dict[str, Any], models: dict[str, Path], oracles: dict[str, Path], faults: bool
) -> None:
    up: subprocess.Popen[bytes] = stack["up"]
    ids = submit(stack["url"], models, PER_MODEL)
    unfinished = unfinished_counter(stack["env"], ids)
    killed: list[str] = []
    total = sum(unfinished().values())
    with Sampler(up.pid, list(SCALING), unfinished) as sampler:
        deadline = time.monotonic() + 900
        while any(unfinished().values()):
            assert time.monotonic() < deadline, unfinished()
            assert up.poll() is None
            # under load: at the limit, or a third of the way at the latest (a fast run may
            # end before its workers reach the limit)
            under_load = sampler.peak() >= LIMIT or 3 * sum(unfinished().values()) <= 2 * total
            if faults and not killed and under_load:
                scaler = [p for p, c in children(up.pid).items() if "scaler serve" in c]
                os.kill(scaler[0], signal.SIGKILL)
                killed.append("scaler")
            if faults and killed == ["scaler"]:
                victim = _busy_worker(stack["client"], "m1") or _busy_worker(stack["client"], "m2")
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
                    killed.append("worker")
            # look often for a busy worker while that fault is still to come
            time.sleep(0.1 if killed == ["scaler"] else 0.5)
    peak = sampler.peak()
    over = [s for s in sampler.samples if sum(s.workers.values()) > LIMIT]
    assert not over, f"live workers over the limit {LIMIT}: {over[:5]}"

    statuses = _statuses(stack["url"], ids)
    assert set(statuses.values()) == {"RUN_COMPLETED"}, statuses
    longest = _longest_sub_task(stack["url"], ids)
    bound = longest + POLLING_S + START_S
    for model in SCALING:
        gap = sampler.longest_gap(model)
        assert gap <= bound, f"{model} had work and no worker for {gap:.1f} s (bound {bound:.1f})"
    run = stack["tmp"] / "storage" / "run"
    problems = starved_answers(scaler_answers(run / "scaler.log"), bound)
    assert not problems, problems
    if faults:
        assert killed == ["scaler", "worker"], killed
    _check_outputs(stack["url"], ids, oracles, stack["tmp"])

    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=180) == 0
    out = (stack["tmp"] / "up.out").read_text()
    if faults:
        assert "scaler exited with -9; restarting it" in out and "restarted scaler" in out
    assert "nothing left running" in out
    assert list(stack["scratch"].iterdir()) == [], "temporary folders left behind"
    print(  # the figures, for the record (pytest -s)
        f"faults={faults}: peak live workers {peak}, worker-seconds "
        f"{sampler.worker_seconds():.0f}, longest sub-task {longest:.0f} s"
    )


def _statuses(url: str, ids: dict[int, str]) -> dict[int, str]:
    from oasislmf.platform_api.client import APIClient

    api = APIClient(api_url=url, username="admin", password="password")
    return {a: api.analyses.status(a) for a in ids}
