"""Scaling on planned work: the demo workload with ``count_planned`` off and on.

``oasis-keda demo``'s workload (3 analyses of the synthetic model, generate-and-run,
DYNAMIC_CHUNKS lookup and losses, DYNAMIC_TASKS with 3 chunks per worker, at most 4
workers) through the whole local runtime, twice: scaling on the queue alone (the Oasis
formula) and on the planned sub-tasks too. Reported for each: the time from the first
submission to the peak worker count, the peak, the worker-seconds and the makespan. Each
run has its own embedded Redis and storage.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from rich.console import Console

from oasis_keda.core.settings import Settings
from oasis_keda.runtime.demo.common import DemoResult, DemoSettings
from oasis_keda.runtime.demo.driving import run_demo


def _run(root: Path, count_planned: bool) -> DemoResult:
    env = {k: v for k, v in os.environ.items() if k != "OASIS_KEDA_REDIS_URL"}
    env["OASIS_KEDA_STORAGE_DIR"] = str(root / "storage")
    config = DemoSettings(out_dir=root, count_planned=count_planned)
    result = run_demo(config, env=env, console=Console(file=io.StringIO()))
    if not result.ok:
        raise RuntimeError(f"demo run (count_planned={count_planned}) did not complete cleanly")
    return result


def run(settings: Settings) -> str:
    del settings  # each run starts its own Redis
    rows = []
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-planned-") as tmp:
        for flag in (False, True):
            result = results[flag] = _run(Path(tmp) / f"planned-{flag}", flag)
            to_peak = "-" if result.time_to_peak_s is None else f"{result.time_to_peak_s:.1f}"
            rows.append(
                f"| {'on' if flag else 'off'} | {to_peak} | {result.peak_workers} "
                f"| {result.worker_seconds:.0f} | {result.wall_s:.1f} |"
            )
    off, on = results[False], results[True]
    return "\n".join(
        [
            "## Scaling on planned work (`bench_planned`)",
            "",
            (
                "The demo workload (3 analyses, 400 locations, 600 events, 100 locations per "
                "lookup chunk, 100 events per loss chunk, DYNAMIC_TASKS 3 chunks per worker, max "
                "4) through `oasis-keda up`'s parts, with the scaling field `count_planned` off "
                "and on. Time to peak: first submission to the first sample at the peak worker "
                "count. Makespan: first submission to the last analysis done."
            ),
            "",
            "| count_planned | time to peak s | peak workers | worker-seconds | makespan s |",
            "|---|---|---|---|---|",
            *rows,
            "",
            (
                f"Makespan on / off: {on.wall_s / off.wall_s:.2f}; worker-seconds on / off: "
                f"{on.worker_seconds / max(off.worker_seconds, 1e-9):.2f}."
            ),
        ]
    )
