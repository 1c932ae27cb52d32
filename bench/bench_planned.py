"""Scaling on planned work: the demo workload with ``count_planned`` off and on.

``oasis-keda demo``'s workload (3 analyses of the synthetic model, generate-and-run,
DYNAMIC_CHUNKS lookup and losses, DYNAMIC_TASKS with 3 chunks per worker, at most 4
workers) through the whole local runtime, twice: scaling on the queue alone (the Oasis
formula) and on the planned sub-tasks too. Reported for each: the time from the first
submission to the peak worker count, the peak, the worker-seconds and the makespan. Each
run has its own embedded Redis; the records database is shared, so that the second run's
ETAs have the first run's history (the first run's are a new model's).
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
from pathlib import Path

from rich.console import Console

from oasis_keda.core.settings import Settings
from oasis_keda.runtime.demo.common import DemoResult, DemoSettings
from oasis_keda.runtime.demo.driving import run_demo


def _run(root: Path, count_planned: bool) -> DemoResult:
    env = {k: v for k, v in os.environ.items() if k != "OASIS_KEDA_REDIS_URL"}
    env["OASIS_KEDA_STORAGE_DIR"] = str(root.parent / "storage")
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
            *_planned_section(rows, off, on),
            "",
            *_eta_section(results),
        ]
    )


def _eta_section(results: dict[bool, DemoResult]) -> list[str]:
    """The ETAs made during each stage against the time really left (both runs)."""
    rows = []
    for flag, history in ((False, "none (a new model)"), (True, "the first run's")):
        for stage in ("inputs", "losses"):
            ids = {a.analysis_id for a in results[flag].analyses}
            settled = [
                o
                for o in results[flag].eta_outcomes
                if o["stage"] == stage and o["analysis_id"] in ids  # Redis keeps the first run's
            ]
            pairs = [p for o in settled for p in o["pairs"]]
            if not pairs:
                continue
            errors = [abs(est - actual) for est, actual in pairs]
            relative = [abs(est - actual) / actual for est, actual in pairs if actual > 0]
            rows.append(
                f"| {history} | {stage} | {len(settled)} | {len(pairs)} "
                f"| {statistics.median(actual for _, actual in pairs):.2f} "
                f"| {statistics.median(errors):.2f} | {max(errors):.2f} "
                f"| {100 * statistics.median(relative):.0f}% |"
            )
    return [
        "## ETA against the actual time left (`bench_planned`)",
        "",
        (
            "Every estimate of a stage's time left made during the two runs above (one as each "
            "sub-task completes), against the time that was really left when it was made. The "
            "first run's model has no history: its steps other than the chunks are taken to "
            "last as long as a chunk until one of them has run; the second run has the first "
            "run's records."
        ),
        "",
        (
            "| history | stage | stages | estimates | median time left s | median abs error s "
            "| max abs error s | median rel error |"
        ),
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def _planned_section(rows: list[str], off: DemoResult, on: DemoResult) -> list[str]:
    return [
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
