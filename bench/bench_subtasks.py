"""Per-sub-task overhead of the task controller and Celery.

A stage of trivial work (the ``noop`` stage of the test hooks, :mod:`oasis_keda.testing`:
prepare, N chunks, collect, cleanup) is requested through the controller, exactly as
generate/run are, with one real ``oasis-keda controller serve`` and one ``oasis-keda worker
serve`` process on the Redis of ``settings``, both started with the test hooks. Wall time from the request to READY covers the main task, planning, the
sub-task rows, the canvas, every message round trip, the records each sub-task writes
(QUEUED, STARTED, COMPLETED with its log) and the chord join. Reported: ms per sub-task for
a 50-chunk stage, and the marginal cost of one more chunk ((T50 - T1) / 49). Goal: <= 10 ms.

Run alone: ``python -m oasis_keda.runtime.embedded_redis -- python -m bench.bench_subtasks``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from oasis_keda import testing
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings

CHUNKS = 50
REPEATS = 5
GOAL_MS = 10.0
POLL_S = 0.005


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from oasis_keda.cli import main; main()",
                "--log-level",
                "WARNING",
                *args,
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _stage_seconds(controller: object, analysis_id: int, chunks: int) -> float:
    from task_controller import records
    from task_controller.requests import Requests

    assert isinstance(controller, Requests)
    start = time.perf_counter()
    controller.request(analysis_id, "noop", options={"noop_chunks": chunks})
    while True:
        with controller.sessions() as session:
            status = records.get_analysis(session, analysis_id).status
        if status == "READY":
            return time.perf_counter() - start
        if status.endswith(("_ERROR", "_CANCELLED")):
            raise RuntimeError(f"noop stage ended {status}")
        time.sleep(POLL_S)


def measure(settings: Settings) -> dict[str, float]:
    from task_controller.requests import make_requests

    testing.install()  # this process requests the noop stage

    model_id = f"bench-noop-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="oasis-keda-bench-") as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "OASIS_KEDA_REDIS_URL": settings.redis_url,
            "OASIS_KEDA_STORAGE_DIR": str(root / "storage"),
            "OASIS_KEDA_DATABASE_URL": f"sqlite:///{root / 'records.sqlite3'}",
            testing.ENV_VAR: "1",  # the controller and worker run the noop stage
        }
        local = Settings.from_env(env)
        client = redis.Redis.from_url(settings.redis_url)
        Registry(client).register(model_id)
        procs = [
            _start(["controller", "serve"], env, root / "controller.log"),
            _start(["worker", "serve", "--model", model_id], env, root / "worker.log"),
        ]
        try:
            controller = make_requests(local)
            locations = root / "location.csv"
            locations.write_text(
                "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency\n"
                "1,A1,1,GB,WTC,GBP\n"
            )
            analysis_id = controller.create_analysis(
                "bench", model_id=model_id, location_file=locations
            )
            _stage_seconds(controller, analysis_id, 2)  # warm both processes up
            t50 = [_stage_seconds(controller, analysis_id, CHUNKS) for _ in range(REPEATS)]
            t1 = [_stage_seconds(controller, analysis_id, 1) for _ in range(REPEATS)]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
            Registry(client).delete(model_id)
            client.close()
    subtasks = CHUNKS + 3
    m50, m1 = statistics.median(t50), statistics.median(t1)
    return {
        "t50_s": m50,
        "t1_s": m1,
        "ms_per_subtask": 1000 * m50 / subtasks,
        "ms_marginal_chunk": 1000 * (m50 - m1) / (CHUNKS - 1),
        "subtasks": subtasks,
    }


def run(settings: Settings) -> str:
    result = measure(settings)
    verdict = "meets" if result["ms_per_subtask"] <= GOAL_MS else "misses"
    machine = (
        f"Command: `make bench` (module `bench/bench_subtasks.py`); machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        "SQLite records DB, local Redis, 1 controller + 1 solo worker process."
    )
    n = f"{result['subtasks']:.0f}"
    rows = [
        (
            f"50-chunk trivial stage ({n} sub-tasks), request to READY, median of {REPEATS}",
            f"{result['t50_s'] * 1000:.0f} ms",
        ),
        (f"1-chunk stage (4 sub-tasks), median of {REPEATS}", f"{result['t1_s'] * 1000:.0f} ms"),
        (f"**ms per sub-task** (50-chunk stage / {n})", f"**{result['ms_per_subtask']:.1f} ms**"),
        ("marginal ms per extra chunk ((T50 - T1) / 49)", f"{result['ms_marginal_chunk']:.1f} ms"),
    ]
    lines = [
        "## Sub-task overhead (controller + Celery)",
        "",
        machine,
        "",
        "| measure | value |",
        "|---|---|",
    ]
    lines += [f"| {label} | {value} |" for label, value in rows]
    lines += ["", f"Goal <= {GOAL_MS:.0f} ms per sub-task: {verdict}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(Settings.from_env(os.environ)))
