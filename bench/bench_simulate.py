"""The what-if simulator against a real run of the demo workload.

A few trials, each: the demo run for real on the local runtime (``oasis-keda demo``'s
code: the synthetic model, 3 analyses sent to generate-and-run at once, DYNAMIC_TASKS 3
chunks per worker, at most 4 workers, the local KEDA + HPA timings), its records exported
as a workload, and that workload simulated with the same configuration, with the platform
timings measured from the run (the export's; then with the worker start replaced by the
median of each worker process's start to its first sub-task). Compared: the makespan (first request to last sub-task end),
the worker-seconds (live worker processes integrated from the first request until they are
back to 0; the real count is the autoscaler's samples), the peak, and the worker count
second by second. Then the same workload under the two baselines and a few other
configurations, and the comparison picture for the README.

Run alone: ``python -m bench.bench_simulate``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from oasis_keda.core.config import ScalingConfig, ScalingStrategy
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import make_engine, make_session_factory
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.demo import DemoSettings, run_demo
from oasis_keda.runtime.simulate import SimResult, SimSettings, simulate
from oasis_keda.runtime.simulate import results as res
from oasis_keda.runtime.simulate import workload as wl
from oasis_keda.runtime.simulate.export import workload_from_records
from oasis_keda.runtime.simulate.policies import BASELINES, Configuration

ROOT = Path(__file__).resolve().parent.parent
PICTURE = ROOT / "docs" / "images" / "simulate-demo.png"
WORKLOAD = ROOT / "docs" / "images" / "simulate-demo.jsonl"
TRIALS = 3


@dataclasses.dataclass(frozen=True)
class RealRun:
    workload: wl.Workload
    series: tuple[tuple[float, int], ...]
    """``(seconds since the first request, live workers)`` from the autoscaler's samples."""
    makespan_s: float
    worker_seconds: float
    peak: int
    start_s: float
    """From the first request to the first sub-task starting (what the export measures)."""
    starts: tuple[float, ...]
    """Each worker process's start to its first sub-task, in the order they started."""


def _real_run(root: Path, demo: DemoSettings) -> RealRun:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OASIS_KEDA_STORAGE_DIR", "OASIS_KEDA_DATABASE_URL")
    }
    result = run_demo(demo, env=env, console=Console(file=io.StringIO(), width=120))
    if not result.ok:
        raise RuntimeError(f"the demo run did not end well: {result}")
    storage = demo.out_dir / "storage"
    sessions = make_session_factory(make_engine(f"sqlite:///{storage / 'oasis-keda.sqlite3'}"))
    scaling = ScalingConfig(
        scaling_strategy=ScalingStrategy.DYNAMIC_TASKS,
        chunks_per_worker=demo.chunks_per_worker,
        worker_count_max=demo.max_workers,
    )
    with sessions() as session:
        work = workload_from_records(session, scaling={"synth": scaling})
        origin, first_start, last_end = _times(session)
        firsts = _first_tasks(session)
    t0 = origin.replace(tzinfo=dt.UTC).timestamp()
    samples = [
        json.loads(line)
        for line in (storage / "run" / "autoscaler-samples.jsonl").read_text().splitlines()
    ]
    series = tuple((s["at"] - t0, int(s["actual"])) for s in samples if s["at"] >= t0)
    series = ((0.0, _count_before(samples, t0)), *series)
    end = next((t for t, n in series if n == 0 and t > 0), series[-1][0])
    spawned: list[float] = []
    previous = 0
    for sample in samples:
        actual = int(sample["actual"])
        spawned += [sample["at"] - t0] * max(actual - previous, 0)
        previous = actual
    first_tasks = [(t - origin).total_seconds() for t in firsts]
    return RealRun(
        workload=work,
        series=series,
        makespan_s=(last_end - origin).total_seconds(),
        worker_seconds=_integral(series, end),
        peak=max(n for _, n in series),
        start_s=(first_start - origin).total_seconds(),
        starts=tuple(f - p for p, f in zip(spawned, first_tasks, strict=False)),
    )


def _first_tasks(session: Any) -> list[dt.datetime]:
    """Each worker's first sub-task start, earliest first."""
    from sqlalchemy import func, select

    from oasis_keda.core.store import SubTask

    rows = session.execute(select(func.min(SubTask.start_time)).group_by(SubTask.worker)).all()
    return sorted(r[0] for r in rows if r[0] is not None)


def _times(session: Any) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    from sqlalchemy import func, select

    from oasis_keda.core.store import SubTask

    row = session.execute(
        select(
            func.min(SubTask.pending_time), func.min(SubTask.start_time), func.max(SubTask.end_time)
        )
    ).one()
    return row[0], row[1], row[2]


def _count_before(samples: list[dict[str, Any]], t0: float) -> int:
    before = [s for s in samples if s["at"] < t0]
    return int(before[-1]["actual"]) if before else 0


def _integral(series: tuple[tuple[float, int], ...], end: float) -> float:
    total = 0.0
    for (t, n), (t_next, _) in zip(series, [*series[1:], (end, 0)], strict=True):
        total += n * max(min(t_next, end) - t, 0.0)
    return total


def _count_at(series: tuple[tuple[float, int], ...], t: float) -> int:
    count = 0
    for at, n in series:
        if at > t:
            break
        count = n
    return count


def _err(sim_value: float, real_value: float) -> str:
    return f"{100 * (sim_value - real_value) / real_value:+.1f}%"


#: Largest absolute relative error per variant: ``{variant: [makespan, worker-seconds]}``.
WORST: dict[str, list[float]] = {}


def _row(trial: int, variant: str, real: RealRun, sim: SimResult) -> str:
    worst = WORST.setdefault(variant, [0.0, 0.0])
    worst[0] = max(worst[0], abs(sim.makespan_s - real.makespan_s) / real.makespan_s)
    worst[1] = max(worst[1], abs(sim.worker_seconds - real.worker_seconds) / real.worker_seconds)
    horizon = int(max(real.makespan_s, sim.makespan_s)) + 1
    seconds = range(horizon)
    mean_real = sum(_count_at(real.series, t) for t in seconds) / horizon
    mean_sim = sum(sim.workers_at(t) for t in seconds) / horizon
    diff = sum(abs(_count_at(real.series, t) - sim.workers_at(t)) for t in seconds) / horizon
    return (
        f"| {trial} | {variant} | {real.makespan_s:.1f} | {sim.makespan_s:.1f} "
        f"({_err(sim.makespan_s, real.makespan_s)}) | {real.worker_seconds:.0f} "
        f"| {sim.worker_seconds:.0f} ({_err(sim.worker_seconds, real.worker_seconds)}) "
        f"| {mean_real:.2f} | {mean_sim:.2f} ({_err(mean_sim, mean_real)}) | {diff:.2f} "
        f"| {real.peak} / {sim.peak_workers} |"
    )


def _trial(k: int) -> tuple[RealRun, SimSettings, list[str]]:
    """One real run and its simulations: the comparison rows, and the measured settings."""
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        real = _real_run(Path(tmp), DemoSettings(out_dir=Path(tmp)))
    timings = real.workload.timings
    measured = SimSettings(
        autoscaler=AutoscalerSettings(),
        worker_start_s=real.start_s,
        task_overhead_s=timings.get("task_overhead_s", 0.0),
        phase_delay_s=timings.get("phase_delay_s", 0.0),
    )
    later = real.starts[1:] or real.starts
    per_worker = dataclasses.replace(measured, added_start_s=statistics.median(later))
    recorded = Configuration(name="recorded")
    rows = [
        _row(k, "export's timings", real, simulate(real.workload, recorded, measured)),
        _row(k, "+ added workers' start", real, simulate(real.workload, recorded, per_worker)),
    ]
    note = (
        f"trial {k}: first request to first sub-task {real.start_s:.1f} s, sub-task overhead "
        f"{measured.task_overhead_s:.2f} s, phase delay {measured.phase_delay_s:.2f} s; each "
        "worker process's start to its first sub-task "
        f"{', '.join(f'{x:.1f}' for x in real.starts)} s"
    )
    return real, measured, [*rows, note]


def run(settings: Settings) -> str:
    del settings  # the demo starts its own Redis
    rows: list[str] = []
    notes: list[str] = []
    for k in range(1, TRIALS + 1):
        real, measured, (*trial_rows, note) = _trial(k)
        rows += trial_rows
        notes.append(f"* {note}.")
    wl.write(real.workload, WORKLOAD)
    ours = Configuration(name="demo (recorded)")
    configurations = [
        ours,
        *(ours.baseline(p) for p in BASELINES),
        Configuration(
            name="cpw 1, max 8",
            scaling=ScalingConfig(
                scaling_strategy=ScalingStrategy.DYNAMIC_TASKS,
                chunks_per_worker=1,
                worker_count_max=8,
            ),
        ),
        Configuration(
            name="fixed 2",
            scaling=ScalingConfig(
                scaling_strategy=ScalingStrategy.FIXED_WORKERS, worker_count_fixed=2
            ),
        ),
    ]
    results = [simulate(real.workload, c, measured) for c in configurations]
    res.plot(results, PICTURE, title="The demo workload, simulated")
    return "\n".join(
        [
            "## What-if simulator against a real run (`bench_simulate`)",
            "",
            (
                f"{TRIALS} trials. Each runs the demo for real (3 analyses of the synthetic "
                "model sent to generate-and-run at once, DYNAMIC_TASKS 3 chunks per worker, at "
                "most 4 workers, the local runtime's timings), exports it with the `analyses "
                "export` code and simulates it with the same configuration, twice: with the "
                "platform timings the export measures (worker start = first request to first "
                "sub-task), and with, in addition, the start of a worker added beside running "
                "ones (`added_start_s`) set to the median over the real run's later worker "
                "processes of process start to first sub-task (process starts from the local "
                "autoscaler's samples, paired in order with the workers' first sub-tasks): on "
                "2 shared cores a worker that starts beside busy ones starts slower. Worker counts are live worker processes (starting, working or "
                "draining); the real ones are the autoscaler's samples. Goal: within 10%."
            ),
            "",
            (
                "| trial | worker start | real makespan s | simulated | real worker-s | simulated "
                "| real mean workers | simulated | mean abs. difference in workers per s "
                "| peak real / simulated |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *(
                f"Largest error over the trials, {variant}: makespan {100 * m:.1f}%, "
                f"worker-seconds {100 * w:.1f}%."
                for variant, (m, w) in WORST.items()
            ),
            "",
            *notes,
            "",
            (
                "The last trial's workload under other policies and configurations, with its "
                f"measured timings (picture: `{PICTURE.relative_to(ROOT)}`, workload: "
                f"`{WORKLOAD.relative_to(ROOT)}`):"
            ),
            "",
            res.markdown(results),
        ]
    )


if __name__ == "__main__":
    print(run(Settings.from_env(dict(os.environ))))
