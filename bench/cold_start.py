"""A worker's cold-start penalty, measured on real processes.

The penalty of a worker that starts with work waiting (a scale-up, from zero or not) is the
time from its process start to the end of its first sub-task, minus that sub-task's own
time on a warm worker. :func:`measure_cold_start` measures it on one real ``oasis-keda
controller serve`` and real ``oasis-keda worker serve`` processes against a Redis:

1. a warm worker generates an analysis's inputs and runs its losses twice (the second run
   gives the warm time of each loss sub-task), then stops;
2. with no worker alive, the losses are requested again (the sub-tasks wait in the queue),
   and a new worker process starts: its first sub-task is the stage's first one, and its
   first chunk comes right after;
3. from the records: when each sub-task of that run started and ended, against the start
   of the process and the warm run's times.

Run alone: ``python -m oasis_keda.runtime.embedded_redis -- python -m bench.cold_start``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings

TIMEOUT_S = 600.0
#: How long to wait for the readiness file once the stage is done (a worker without one
#: never writes it).
READY_WAIT_S = 10.0
POLL_S = 0.05
DONE_INPUTS = {"READY", "INPUTS_GENERATION_ERROR", "INPUTS_GENERATION_CANCELLED"}
CHUNK_SLUG = "generate-losses-chunk-"
#: The worker's log line at the end of its background imports (worker/warmup.py).
WARM_UP_LINE = re.compile(r"warm-up done in ([0-9.]+) s")
DONE_RUN = {"RUN_COMPLETED", "RUN_ERROR", "RUN_CANCELLED"}


def _cli(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-c", "from oasis_keda.cli import main; main()", *args],
            env=dict(env),
            cwd=log.parent,  # the code comes from the environment's path, not from here
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _wait_status(controller: Any, analysis_id: int, done: set[str], timeout_s: float) -> str:
    from task_controller import records

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with controller.sessions() as session:
            status = str(records.get_analysis(session, analysis_id).status)
        if status in done:
            return status
        time.sleep(POLL_S)
    raise TimeoutError(f"analysis {analysis_id} not in {sorted(done)} after {timeout_s} s")


def _times(controller: Any, analysis_id: int, run: int) -> list[tuple[str, float, float]]:
    """(slug, start, end) of each sub-task of a run, as Unix times."""
    from task_controller import records

    def unix(value: dt.datetime) -> float:
        return value.replace(tzinfo=value.tzinfo or dt.UTC).timestamp()

    with controller.sessions() as session:
        subs = records.subtasks(session, analysis_id, run)
        out = [
            (s.slug, unix(s.start_time), unix(s.end_time))
            for s in subs
            if s.start_time and s.end_time
        ]
    return sorted(out, key=lambda row: row[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_cold_start(
    redis_url: str | None = None,
    *,
    model_dir: Path | None = None,
    chunks: int = 2,
    env: Mapping[str, str] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """Start a real worker with work waiting and measure its cold-start penalty.

    ``redis_url``: the Redis to use (default ``OASIS_KEDA_REDIS_URL``); ``model_dir``: an
    oasislmf model directory with ``location.csv``, ``account.csv`` and
    ``analysis_settings.json`` (default: the built-in synthetic model); ``chunks``: loss
    chunks of the run; ``env``: extra environment of the processes (e.g.
    ``NUMBA_CACHE_DIR``). Every process it starts is stopped before it returns.

    Returns seconds, all from the cold worker's process start unless said otherwise:
    ``penalty_s`` (end of its first sub-task minus that sub-task's warm time),
    ``first_subtask`` (its slug), ``first_start_s`` and ``first_end_s``, ``ready_s`` (the
    readiness file appeared), ``warm_subtask_s`` and ``cold_subtask_s`` (the first
    sub-task's time on the warm and on the cold worker), ``chunk_penalty_s`` (the first
    chunk's cold time minus its warm time: the compiled code loaded on first call),
    ``stage_penalty_s`` (end of the stage minus its warm duration), ``subtasks`` (slug,
    cold and warm seconds of each), ``warm_up_s`` (the background imports, from its log),
    and ``load_avg`` (1-minute load before and after).
    """
    from task_controller.requests import make_requests

    url = redis_url or os.environ.get("OASIS_KEDA_REDIS_URL", "")
    if not url:
        raise ValueError("no Redis: pass redis_url or set OASIS_KEDA_REDIS_URL")
    load_before = os.getloadavg()[0]
    model_id = f"cold-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="oasis-keda-cold-") as tmp:
        root = Path(tmp)
        if model_dir is None:
            from oasis_keda.runtime.synth import write_synthetic_model

            model_dir = root / "model"
            write_synthetic_model(model_dir, seed=1)
        penv = {
            **os.environ,
            **(env or {}),
            "OASIS_KEDA_REDIS_URL": url,
            "OASIS_KEDA_STORAGE_DIR": str(root / "storage"),
            "OASIS_KEDA_DATABASE_URL": f"sqlite:///{root / 'records.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
        }
        client = redis.Redis.from_url(url)
        Registry(client).register(model_id, model_dir=str(model_dir))
        controller = make_requests(Settings.from_env(penv))
        procs = [_cli(["controller", "serve"], penv, root / "controller.log")]
        try:
            warm = _cli(["worker", "serve", "--model", model_id], penv, root / "warm.log")
            procs.append(warm)
            analysis_id = controller.create_analysis(
                "cold-start",
                model_id=model_id,
                location_file=model_dir / "location.csv",
                accounts_file=model_dir / "account.csv",
                settings_file=model_dir / "analysis_settings.json",
                chunking={"fixed_lookup_chunks": chunks, "fixed_analysis_chunks": chunks},
            )
            controller.generate(analysis_id)
            _check(_wait_status(controller, analysis_id, DONE_INPUTS, timeout_s), "READY", root)
            for _ in range(2):  # the first warms the worker's code, the second is timed
                run = controller.run(analysis_id)
                status = _wait_status(controller, analysis_id, DONE_RUN, timeout_s)
                _check(status, "RUN_COMPLETED", root)
            warm_times = _times(controller, analysis_id, run)
            _stop(warm)
            # work waiting, no worker: then a worker process starts
            cold_run = controller.run(analysis_id)
            ready_file = root / "cold.ready"
            t0 = time.time()
            cold = _cli(
                ["worker", "serve", "--model", model_id],
                {**penv, "OASIS_KEDA_WORKER_READY_FILE": str(ready_file)},
                root / "cold.log",
            )
            procs.append(cold)
            _check(
                _wait_status(controller, analysis_id, DONE_RUN, timeout_s), "RUN_COMPLETED", root
            )
            ready_s = _wait_file(ready_file, t0, READY_WAIT_S)
            cold_times = _times(controller, analysis_id, cold_run)
            found = WARM_UP_LINE.search((root / "cold.log").read_text(errors="replace"))
            warm_up_s = float(found.group(1)) if found else None
        finally:
            for proc in procs:
                _stop(proc)
            Registry(client).delete(model_id)
            client.close()
            controller.app.close()
    return {**_summary(t0, ready_s, cold_times, warm_times, load_before), "warm_up_s": warm_up_s}


def _wait_file(path: Path, t0: float, timeout_s: float) -> float | None:
    """Seconds from ``t0`` to the file's appearance (its mtime), None if it never did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return path.stat().st_mtime - t0
        time.sleep(POLL_S)
    return None


def _check(status: str, want: str, root: Path) -> None:
    if status != want:
        logs = "\n".join(
            f"== {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(root.glob("*.log"))
        )
        raise RuntimeError(f"analysis ended {status}, not {want}\n{logs}")


def _summary(
    t0: float,
    ready_s: float | None,
    cold: list[tuple[str, float, float]],
    warm: list[tuple[str, float, float]],
    load_before: float,
) -> dict[str, Any]:
    warm_by_slug: dict[str, list[float]] = {}
    for slug, start, end in warm:
        warm_by_slug.setdefault(slug, []).append(end - start)
    first_slug, first_start, first_end = cold[0]
    warm_first = min(warm_by_slug[first_slug])
    chunk = next(row for row in cold if row[0].startswith(CHUNK_SLUG))
    warm_chunk = min(v for k, vs in warm_by_slug.items() if k.startswith(CHUNK_SLUG) for v in vs)
    warm_stage = max(end for _s, _b, end in warm) - min(start for _s, start, _e in warm)
    return {
        "penalty_s": first_end - t0 - warm_first,
        "first_subtask": first_slug,
        "ready_s": ready_s,
        "first_start_s": first_start - t0,
        "first_end_s": first_end - t0,
        "warm_subtask_s": warm_first,
        "cold_subtask_s": first_end - first_start,
        "chunk_penalty_s": (chunk[2] - chunk[1]) - warm_chunk,
        "stage_penalty_s": max(end for _s, _b, end in cold) - t0 - warm_stage,
        "subtasks": [
            {"slug": slug, "cold_s": end - start, "warm_s": min(warm_by_slug.get(slug, [0.0]))}
            for slug, start, end in cold
        ],
        "load_avg": [load_before, os.getloadavg()[0]],
    }


if __name__ == "__main__":
    print(json.dumps(measure_cold_start(), indent=2))
