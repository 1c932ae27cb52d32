"""The global worker limit under load: what it costs, beside the same run with no limit.

The load scenario of the global-limit test, on ``oasis-keda up`` as a user runs it: three
synthetic models (200 locations, 80 events, 4 lookup and 4 loss chunks each; m1
DYNAMIC_TASKS 2 chunks per worker, at most 3 workers; m2 QUEUE_LOAD at most 2; m3
FIXED_WORKERS 1) and 15 analyses (5 per model) sent to the REST API's ``generate_and_run``
at once. Run with a global limit of 4, then with none. Sampling the worker processes every
0.5 s: the peak of live workers, the worker-seconds (the integral of live workers over
time, what a cluster pays for) and the makespan (first request to last analysis done).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.runtime.embedded_redis import free_port
from oasis_keda.runtime.supervisor import cli_command
from oasis_keda.runtime.synth import write_synthetic_model
from tests.load_support import Sampler, register_models, submit, unfinished_counter

LIMIT = 4
PER_MODEL = 5
SCALING: dict[str, dict[str, Any]] = {
    "m1": {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "worker_count_max": 3},
    "m2": {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 2},
    "m3": {"scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 1},
}


def _case(
    settings: Settings, root: Path, models: dict[str, Path], limit: int | None
) -> dict[str, float]:
    client = redis.Redis.from_url(settings.redis_url)
    register_models(client, models, SCALING, limit)
    scratch = root / "tmp"
    scratch.mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "OASIS_KEDA_REDIS_URL": settings.redis_url,
        "OASIS_KEDA_STORAGE_DIR": str(root / "storage"),
        "TMPDIR": str(scratch),
    }
    log = root / "up.out"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [*cli_command(), "up", "--api-port", str(port)], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 120
        while "Running" not in log.read_text(errors="replace"):
            if up.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"up did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        started = time.monotonic()
        ids = submit(f"http://127.0.0.1:{port}", models, PER_MODEL)
        unfinished = unfinished_counter(env, ids)
        with Sampler(up.pid, list(SCALING), unfinished) as sampler:
            deadline = time.monotonic() + 1800
            while any(unfinished().values()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"analyses not done: {unfinished()}")
                time.sleep(0.5)
            makespan = time.monotonic() - started
        return {
            "peak": float(sampler.peak()),
            "worker_seconds": sampler.worker_seconds(),
            "makespan": makespan,
        }
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=180)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        registry = Registry(client)
        registry.set_global_worker_limit(None)
        for model in models:
            registry.delete(model)
        client.close()


def run(settings: Settings) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        root = Path(tmp)
        models = {}
        for seed, model in enumerate(SCALING, start=1):
            write_synthetic_model(root / "models" / model, locations=200, events=80, seed=seed)
            models[model] = root / "models" / model
        limited = _case(settings, root / "limited", models, LIMIT)
        free = _case(settings, root / "free", models, None)
    rows = [
        (
            f"| global limit {LIMIT} | {limited['peak']:.0f} | {limited['worker_seconds']:.0f} "
            f"| {limited['makespan']:.1f} |"
        ),
        f"| no limit | {free['peak']:.0f} | {free['worker_seconds']:.0f} | {free['makespan']:.1f} |",
    ]
    return "\n".join(
        [
            "## Global worker limit under load (`bench_budget`)",
            "",
            (
                "Three synthetic models (200 locations, 80 events, 4 + 4 chunks; m1 DYNAMIC_TASKS "
                "2 per worker max 3, m2 QUEUE_LOAD max 2, m3 FIXED 1), 15 analyses sent to "
                "`generate_and_run` at once on `oasis-keda up`; worker processes sampled every "
                "0.5 s. Worker-seconds: live workers integrated over time."
            ),
            "",
            "| run | peak live workers | worker-seconds | makespan s |",
            "|---|---|---|---|",
            *rows,
            "",
            (
                f"Makespan ratio limited / unlimited: {limited['makespan'] / free['makespan']:.2f}; "
                f"worker-seconds ratio: {limited['worker_seconds'] / free['worker_seconds']:.2f}."
            ),
        ]
    )
