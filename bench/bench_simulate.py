"""The what-if simulator against a real run of the demo workload.

Runs the demo for real on the local runtime (``oasis-keda demo``'s code: the synthetic
model, 3 analyses sent to generate-and-run at once, DYNAMIC_TASKS 3 chunks per worker, at
most 4 workers, the local KEDA + HPA timings), exports its records as a workload, and
simulates that workload with the same configuration. The worker start time given to the
simulator is measured from the run itself: from the first request to the first sub-task
starting on the idle model. Compared: the makespan (first request to last sub-task end),
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


@dataclasses.dataclass(frozen=True)
class RealRun:
    workload: wl.Workload
    series: tuple[tuple[float, int], ...]
    """``(seconds since the first request, live workers)`` from the autoscaler's samples."""
    makespan_s: float
    worker_seconds: float
    peak: int
    start_s: float


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
    t0 = origin.replace(tzinfo=dt.UTC).timestamp()
    samples = [
        json.loads(line)
        for line in (storage / "run" / "autoscaler-samples.jsonl").read_text().splitlines()
    ]
    series = tuple((s["at"] - t0, int(s["actual"])) for s in samples if s["at"] >= t0)
    series = ((0.0, _count_before(samples, t0)), *series)
    end = next((t for t, n in series if n == 0 and t > 0), series[-1][0])
    return RealRun(
        workload=work,
        series=series,
        makespan_s=(last_end - origin).total_seconds(),
        worker_seconds=_integral(series, end),
        peak=max(n for _, n in series),
        start_s=(first_start - origin).total_seconds(),
    )


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


def _compare(real: RealRun, sims: list[SimResult]) -> list[str]:
    horizon = int(max(real.makespan_s, *(s.makespan_s for s in sims))) + 1
    seconds = range(horizon)
    mean_real = sum(_count_at(real.series, t) for t in seconds) / horizon
    rows = {
        "makespan s": [f"{real.makespan_s:.1f}"],
        "worker-seconds": [f"{real.worker_seconds:.0f}"],
        "peak live workers": [str(real.peak)],
        "mean live workers over the makespan": [f"{mean_real:.2f}"],
        "mean abs. difference in live workers per second": ["-"],
    }
    for sim in sims:
        mean_sim = sum(sim.workers_at(t) for t in seconds) / horizon
        diff = sum(abs(_count_at(real.series, t) - sim.workers_at(t)) for t in seconds)
        rows["makespan s"].append(f"{sim.makespan_s:.1f} ({_err(sim.makespan_s, real.makespan_s)})")
        rows["worker-seconds"].append(
            f"{sim.worker_seconds:.0f} ({_err(sim.worker_seconds, real.worker_seconds)})"
        )
        rows["peak live workers"].append(f"{sim.peak_workers} ({sim.peak_workers - real.peak:+d})")
        rows["mean live workers over the makespan"].append(
            f"{mean_sim:.2f} ({_err(mean_sim, mean_real)})"
        )
        rows["mean abs. difference in live workers per second"].append(f"{diff / horizon:.2f}")
    head = " | ".join(s.name for s in sims)
    return [
        f"| figure | real run | {head} |",
        "|---" * (len(sims) + 2) + "|",
        *(f"| {name} | {' | '.join(cells)} |" for name, cells in rows.items()),
    ]


def run(settings: Settings) -> str:
    del settings  # the demo starts its own Redis
    demo_settings = AutoscalerSettings()
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        demo = DemoSettings(out_dir=Path(tmp))
        real = _real_run(Path(tmp), demo)
    wl.write(real.workload, WORKLOAD)
    timings = real.workload.timings
    start_only = SimSettings(autoscaler=demo_settings, worker_start_s=real.start_s)
    sim_settings = dataclasses.replace(
        start_only,
        task_overhead_s=timings.get("task_overhead_s", 0.0),
        phase_delay_s=timings.get("phase_delay_s", 0.0),
    )
    plain = simulate(real.workload, Configuration(name="simulated, start time only"), start_only)
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
    results = [simulate(real.workload, c, sim_settings) for c in configurations]
    res.plot(results, PICTURE, title="The demo workload, simulated")
    return "\n".join(
        [
            "## What-if simulator against a real run (`bench_simulate`)",
            "",
            (
                "The demo (3 analyses of the synthetic model sent to generate-and-run at once, "
                "DYNAMIC_TASKS 3 chunks per worker, at most 4 workers, the local runtime's "
                "timings) run for real, exported with the `analyses export` code, and "
                "simulated with the same configuration: once with only the worker start time "
                f"measured from the run ({real.start_s:.1f} s from the first request to the "
                "first sub-task starting), once with the platform timings the export measures "
                f"as well (sub-task overhead {sim_settings.task_overhead_s:.2f} s, phase delay "
                f"{sim_settings.phase_delay_s:.2f} s; docs/SIMULATOR.md). Worker counts are "
                "live worker processes (starting, working or draining); the real ones are the "
                "local autoscaler's samples. Goal: within 10%."
            ),
            "",
            *_compare(real, [plain, dataclasses.replace(results[0], name="simulated, measured")]),
            "",
            (
                "The same workload under other policies and configurations "
                f"(picture: `{PICTURE.relative_to(ROOT)}`, workload: "
                f"`{WORKLOAD.relative_to(ROOT)}`):"
            ),
            "",
            res.markdown(results),
        ]
    )


if __name__ == "__main__":
    print(run(Settings.from_env(dict(os.environ))))
