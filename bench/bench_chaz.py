"""A CHAZ-sized analysis on 2 workers, the Oasis workshop's dynamic configuration, against
``oasislmf model run`` on 2 processes.

The Oasis workshop's dynamic configuration runs 85,803 locations and 38,127 events with
DYNAMIC_CHUNKS lookup (2,000 locations per chunk) and losses (1,000 events per chunk), at
most 50 chunks, and DYNAMIC_TASKS scaling. Here the model is the built-in synthetic one at
that size (``oasis-keda model synth --locations 85803 --events 38127``, footprint density
0.02: each event touches 2% of the area perils), with its account file, GUL and IL, every
ORD output; real ``oasis-keda controller serve`` and ``worker serve --concurrency 1``
processes, local Redis, SQLite records (:mod:`bench.local_stack`).

One run: 1 warm worker times the lookup; 2 warm workers time the lookup and the losses of
another analysis of the same portfolio, whose outputs are kept; the same 2 workers then
rerun its losses at 2,000 events per chunk and run half the portfolio (each worker's peak
memory against the chunk's events and the portfolio's size); with the workers stopped,
``oasislmf model run`` on 2 processes (:mod:`bench.reference`) on the same files, timed and
its outputs compared with ours.

Size: at 0.02 each of the 38,127 events hits about 1,700 locations, and a loss run costs
about 20 core-minutes here (oasislmf's own run too: gulmc, fmpy and the ORD output tools
per event and sample), so the whole CHAZ event set, run by us three times and by oasislmf
once, takes over an hour on 2 cores. By default the benchmark keeps the 85,803 locations
and runs a tenth of the events (3,813: 4 loss chunks of 1,000), which fits in about 15
minutes. ``OASIS_KEDA_BENCH_CHAZ_EVENT_SCALE`` (``--event-scale``) sets that fraction (1
for the full event set) and ``OASIS_KEDA_BENCH_CHAZ_SCALE`` (``--scale``) scales both the
locations and the events, e.g. 0.05 for a quick look; ``python -m bench.bench_chaz
--scale S --event-scale E`` runs it alone and prints the section.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

import redis

from bench.local_stack import Stack, StageTime, load
from bench.reference import compare_outputs, run_oasislmf
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC

CHAZ_LOCATIONS = 85_803
CHAZ_EVENTS = 38_127
DENSITY = 0.02
WARM_ROWS = 10
#: The workshop's dynamic configuration (its section 3.4).
CHUNKING = {
    "lookup_strategy": "DYNAMIC_CHUNKS",
    "dynamic_locations_per_lookup": 2000,
    "loss_strategy": "DYNAMIC_CHUNKS",
    "dynamic_events_per_analysis": 1000,
    "dynamic_chunks_max": 50,
}
SCALING = {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 10, "worker_count_max": 2}
BIG_CHUNK_EVENTS = 2000
GOAL_RATIO, GOAL_EFFICIENCY, GOAL_SPEEDUP = 2.5, 0.85, 1.7
MIB = 1024 * 1024


def sizes(scale: float, event_scale: float = 1.0) -> tuple[int, int]:
    """Locations and events at ``scale`` (1 = CHAZ), the events also at ``event_scale``."""
    for name, value in (("scale", scale), ("event scale", event_scale)):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {value}")
    locations = max(2 * WARM_ROWS, round(CHAZ_LOCATIONS * scale))
    return locations, max(10, round(CHAZ_EVENTS * scale * event_scale))


def head_rows(source: Path, rows: int, target: Path) -> Path:
    """The header and the first ``rows`` rows of a CSV file."""
    with source.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i > rows:
                break
            out.write(line)
    return target


def format_cold_start(result: dict[str, Any]) -> str:
    """One line from :func:`bench.cold_start.measure_cold_start`'s figures."""
    return (
        f"{result['penalty_s']:.1f} s (first sub-task `{result['first_subtask']}`: "
        f"{result['cold_subtask_s']:.1f} s cold, {result['warm_subtask_s']:.1f} s warm; "
        f"first chunk +{result['chunk_penalty_s']:.1f} s; whole stage "
        f"+{result['stage_penalty_s']:.1f} s; built-in small synthetic model)"
    )


def cold_start(settings: Settings) -> str:
    """The cold-start penalty, from ``bench/cold_start.py`` (another change adds it; until
    it is merged here this reports "not measured")."""
    try:
        module = importlib.import_module("bench.cold_start")
    except ImportError:
        return "not measured (bench/cold_start.py is not on this branch yet)"
    return format_cold_start(module.measure_cold_start(settings.redis_url))


def _write_models(root: Path, scale: float, event_scale: float) -> dict[str, Path]:
    from worker.oasis_env import prepare_process

    prepare_process()
    from oasis_keda.runtime.synth import write_synthetic_model

    locations, events = sizes(scale, event_scale)
    model = write_synthetic_model(
        root / "model", locations=locations, events=events, seed=0, footprint_density=DENSITY
    ).root
    return {
        "model": model,
        "location": model / "location.csv",
        "accounts": model / "account.csv",
        "settings": model / "analysis_settings.json",
        "warm": head_rows(model / "location.csv", WARM_ROWS, root / "warm.csv"),
        "half": head_rows(model / "location.csv", locations // 2, root / "half.csv"),
    }


def _phase_one(stack: Stack, files: dict[str, Path], results: dict[str, Any]) -> None:
    """1 worker: the lookup alone."""
    with stack.workers(1, "1w"):
        warm = stack.analysis("warm-1", files["warm"], files["accounts"], CHUNKING)
        stack.stage(warm, INPUTS_SPEC)
        stack.stage(warm, LOSSES_SPEC)
        results["load_1w"] = load()
        one = stack.analysis("lookup-1w", files["location"], files["accounts"], CHUNKING)
        results["lookup_1w"] = stack.stage(one, INPUTS_SPEC)


def _phase_two(
    stack: Stack, registry: Registry, files: dict[str, Path], root: Path, results: dict[str, Any]
) -> None:
    """2 workers: lookup and losses, then the memory runs."""
    with stack.workers(2, "2w"):
        warm = stack.analysis("warm-2", files["warm"], files["accounts"], CHUNKING)
        stack.stage(warm, INPUTS_SPEC)
        stack.stage(warm, LOSSES_SPEC)
        results["load_2w"] = load()
        # the model's own chunking configuration, so that the rerun below can change it
        main = stack.controller.create_analysis(
            "chaz-2w",
            model_id=stack.model_id,
            location_file=files["location"],
            accounts_file=files["accounts"],
            settings_file=stack.settings_file,
        )
        results["lookup_2w"] = stack.stage(main, INPUTS_SPEC)
        results["losses_2w"] = stack.stage(main, LOSSES_SPEC)
        shutil.copytree(stack.outputs(main), root / "ours")
        shutil.copytree(stack.inputs(main), root / "our-inputs")
        results["load_memory"] = load()
        registry.set_chunking(stack.model_id, {"dynamic_events_per_analysis": BIG_CHUNK_EVENTS})
        results["losses_big_chunks"] = stack.stage(main, LOSSES_SPEC)
        registry.set_chunking(stack.model_id, CHUNKING)
        half = stack.analysis("half-2w", files["half"], files["accounts"], CHUNKING)
        results["lookup_half"] = stack.stage(half, INPUTS_SPEC)
        results["losses_half"] = stack.stage(half, LOSSES_SPEC)


def measure(settings: Settings, scale: float, event_scale: float) -> dict[str, Any]:
    model_id = f"bench-chaz-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.redis_url)
    registry = Registry(client)
    results: dict[str, Any] = {"load_before": load(), "sizes": sizes(scale, event_scale)}
    with tempfile.TemporaryDirectory(prefix="oasis-keda-bench-chaz-") as tmp:
        root = Path(tmp)
        files = _write_models(root, scale, event_scale)
        try:
            registry.register(model_id, model_dir=str(files["model"]))
            registry.set_chunking(model_id, CHUNKING)
            registry.set_scaling(model_id, SCALING)
            stack = Stack(settings, root, model_id, files["settings"])
            try:
                stack.start("controller", "controller", "serve", ready="ready.")
                _phase_one(stack, files, results)
                _phase_two(stack, registry, files, root, results)
            finally:
                stack.close()
        finally:
            with contextlib.suppress(Exception):
                registry.delete(model_id)
            client.close()
        results["load_oasislmf"] = load()
        reference = run_oasislmf(
            files["model"],
            location=files["location"],
            accounts=files["accounts"],
            settings=files["settings"],
            run_dir=root / "oasislmf",
            our_inputs=root / "our-inputs",
        )
        results["oasislmf"] = reference
        results["equal"] = compare_outputs(root / "ours", reference, "CHAZ-sized")
    results["cold_start"] = cold_start(settings)
    results["load_after"] = load()
    return results


def _verdict(value: float, goal: float) -> str:
    return f"{'meets' if value >= goal else 'misses'} >= {goal}"


def _peak_mib(stage: StageTime) -> str:
    """Each worker's peak and, in brackets, its growth over the stage, largest peak first."""
    peaks = sorted(stage.peak_rss.items(), key=lambda item: -item[1])
    return " / ".join(
        f"{peak / MIB:,.0f} (+{(peak - stage.start_rss.get(pid, peak)) / MIB:,.0f})"
        for pid, peak in peaks
    )


def _stage_row(name: str, stage: StageTime, workers: int) -> str:
    chunks = stage.chunk_busy_s
    return (
        f"| {name} | {stage.wall_s:.1f} | {len(chunks)} | {stage.chunks_s:.1f} "
        f"| {stage.serial_busy_s:.1f} | {stage.serial_fraction:.3f} "
        f"| **{stage.efficiency(workers):.2f}** ({_verdict(stage.efficiency(workers), GOAL_EFFICIENCY)}) "
        f"| {statistics.median(chunks):.2f} / {max(chunks):.2f} ({stage.spread:.2f}x) "
        f"| {stage.worker_cpu_s:.0f} ({stage.worker_cpu_s / stage.wall_s:.2f}) "
        f"| {stage.busy_cores:.2f} | {_peak_mib(stage)} |"
    )


def report(result: dict[str, Any]) -> list[str]:
    locations, events = result["sizes"]
    lookup_1, lookup_2, losses_2 = result["lookup_1w"], result["lookup_2w"], result["losses_2w"]
    ours = lookup_2.wall_s + losses_2.wall_s
    reference = result["oasislmf"]
    ratio = reference.wall_s / ours
    speedup = lookup_1.wall_s / lookup_2.wall_s
    big, half_l, half_s = result["losses_big_chunks"], result["lookup_half"], result["losses_half"]
    # the loss chunks run oasislmf's kernel tools, one core each: half their busy seconds is
    # the least time 2 cores can take for them
    floor = sum(losses_2.chunk_busy_s) / 2
    return [
        (
            "| stage | wall s | chunks | chunk phase s | serial steps busy s | serial fraction "
            "| parallel efficiency (goal) | chunk busy s median / max (spread) "
            "| worker CPU s (cores) | busy cores "
            "| peak RSS per worker MiB |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _stage_row("lookup, 1 worker", lookup_1, 1),
        _stage_row("lookup, 2 workers", lookup_2, 2),
        _stage_row("losses, 2 workers", losses_2, 2),
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| oasis-keda, 2 warm workers, lookup through outputs | {ours:.1f} s | |",
        f"| `oasislmf model run`, 2 processes | {reference.wall_s:.1f} s | |",
        f"| **oasislmf / oasis-keda** | **{ratio:.2f}x** | {_verdict(ratio, GOAL_RATIO)}x |",
        (
            "| floor on 2 cores: the loss chunks' busy seconds (oasislmf's kernel tools, one "
            f"core each) / 2; lookup, preparation, outputs left out | {floor:.1f} s | |"
        ),
        (
            f"| highest oasislmf / oasis-keda that floor allows "
            f"| {reference.wall_s / floor:.2f}x | |"
        ),
        (
            f"| lookup speed-up, 2 workers / 1 | **{speedup:.2f}x** "
            f"| {_verdict(speedup, GOAL_SPEEDUP)}x |"
        ),
        f"| serial fraction of the input stage (2 workers) | **{lookup_2.serial_fraction:.3f}** | |",
        f"| outputs against oasislmf's | {result['equal']} | equal |",
        f"| cold-start penalty | {result['cold_start']} | |",
        "",
        (
            "Peak resident memory per worker (MiB, each worker's peak in the stage, largest "
            "first) against the chunk's events and the portfolio's size:"
        ),
        "",
        "| portfolio | events per loss chunk | lookup peak RSS | losses peak RSS | losses wall s |",
        "|---|---|---|---|---|",
        (
            f"| {locations:,} locations | {CHUNKING['dynamic_events_per_analysis']:,} "
            f"| {_peak_mib(lookup_2)} | {_peak_mib(losses_2)} | {losses_2.wall_s:.1f} |"
        ),
        (
            f"| {locations:,} locations | {BIG_CHUNK_EVENTS:,} | | {_peak_mib(big)} "
            f"| {big.wall_s:.1f} |"
        ),
        (
            f"| {locations // 2:,} locations | {CHUNKING['dynamic_events_per_analysis']:,} "
            f"| {_peak_mib(half_l)} | {_peak_mib(half_s)} | {half_s.wall_s:.1f} |"
        ),
        "",
        f"(Model: {locations:,} locations, {events:,} events.)",
    ]


def run(settings: Settings) -> str:
    scale = float(os.environ.get("OASIS_KEDA_BENCH_CHAZ_SCALE", "1"))
    event_scale = float(os.environ.get("OASIS_KEDA_BENCH_CHAZ_EVENT_SCALE", "0.1"))
    result = measure(settings, scale, event_scale)
    locations, events = result["sizes"]
    return "\n".join(
        [
            "## CHAZ-sized analysis, workshop dynamic configuration (`bench_chaz`)",
            "",
            (
                f"The built-in synthetic model at {locations:,} locations and {events:,} "
                f"events (CHAZ: {CHAZ_LOCATIONS:,} and {CHAZ_EVENTS:,}; scale {scale}, event "
                f"scale {event_scale}: see the module's docstring), footprint density {DENSITY} (each event touches "
                f"{DENSITY:.0%} of the area perils), its account file, GUL and IL, every ORD "
                "output, 8 samples. The workshop's dynamic configuration: DYNAMIC_CHUNKS "
                f"lookup ({CHUNKING['dynamic_locations_per_lookup']:,} locations per chunk) "
                f"and losses ({CHUNKING['dynamic_events_per_analysis']:,} events per "
                f"chunk), at most {CHUNKING['dynamic_chunks_max']} chunks, DYNAMIC_TASKS "
                "scaling (at most 2 workers). Real `oasis-keda controller serve` and `worker "
                "serve --concurrency 1` processes, local Redis, SQLite records; each worker "
                "phase starts with an untimed analysis of the portfolio's first 10 rows "
                "(warm workers). Wall: request to READY / RUN_COMPLETED. Serial steps: the "
                "sub-tasks before and after the chunks (the two that write the input files "
                "run side by side); serial fraction: the seconds in which one sub-task of the "
                "stage ran alone (whatever its step, the last chunk included) over all the "
                "stage's sub-task busy seconds (`bench/stage_stats.py`). Parallel "
                "efficiency: the stage's sub-task busy seconds / (workers x wall). Spread: "
                "slowest chunk over the median chunk (a worker's first lookup chunk of a "
                "portfolio also reads the location file's ids and rows, which its later "
                "chunks reuse: the slowest lookup chunks are the first on each worker). "
                "Worker CPU: CPU seconds our worker processes "
                "used in the stage and, in brackets, the cores they got (CPU / wall); busy "
                "cores: the whole machine's non-idle CPU time / wall (ours and other jobs'). "
                "Peak RSS: each worker process's "
                "`VmHWM`, reset when the stage is requested, in MiB, and in brackets its "
                "growth over the worker's resident memory at that moment (a worker keeps "
                "memory from earlier stages, so the peak also carries its history). oasislmf runs once, after our workers "
                "stopped, with `--kernel-num-processes 2 --lookup-num-processes 2`, timed "
                "from its start to its exit."
            ),
            "",
            "Command: `python -m oasis_keda.runtime.embedded_redis -- python -m bench chaz`.",
            "",
            (
                f"Load average: before {result['load_before']}, at the 1-worker lookup "
                f"{result['load_1w']}, at the 2-worker runs {result['load_2w']}, at the "
                f"memory runs {result['load_memory']}, at the oasislmf run "
                f"{result['load_oasislmf']}, after {result['load_after']}."
            ),
            "",
            *report(result),
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = CHAZ size")
    parser.add_argument("--event-scale", type=float, default=0.1, help="1 = every event")
    args = parser.parse_args()
    os.environ["OASIS_KEDA_BENCH_CHAZ_SCALE"] = str(args.scale)
    os.environ["OASIS_KEDA_BENCH_CHAZ_EVENT_SCALE"] = str(args.event_scale)
    print(run(Settings.from_env(os.environ)))
