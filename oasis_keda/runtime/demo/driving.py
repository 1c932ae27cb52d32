"""The demo's run: start the stack, register the model, submit the analyses, wait for them
and for the workers to go back to 0 (showing progress meanwhile), stop every process."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.runtime.autoscaler import AutoscalerSettings
from oasis_keda.runtime.demo.common import (
    FINAL_STATUSES,
    MODEL_ID,
    DemoInterruptedError,
    DemoResult,
    DemoSettings,
)
from oasis_keda.runtime.demo.prepare import warm_numba_cache, write_model
from oasis_keda.runtime.demo.records import progress_rows
from oasis_keda.runtime.demo.reporting import render, summarize
from oasis_keda.runtime.supervisor import Supervisor, SupervisorSettings


def register_model(client: Any, config: DemoSettings, model_dir: Path) -> None:
    """Register the synthetic model: DYNAMIC_CHUNKS for both stages, DYNAMIC_TASKS scaling."""
    registry = Registry(client)
    registry.register(
        MODEL_ID,
        model_dir=str(model_dir.resolve()),
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
    )
    registry.set_chunking(
        MODEL_ID,
        {
            "lookup_strategy": "DYNAMIC_CHUNKS",
            "loss_strategy": "DYNAMIC_CHUNKS",
            "dynamic_locations_per_lookup": config.locations_per_lookup,
            "dynamic_events_per_analysis": config.events_per_chunk,
        },
    )
    registry.set_scaling(
        MODEL_ID,
        {
            "scaling_strategy": "DYNAMIC_TASKS",
            "chunks_per_worker": config.chunks_per_worker,
            "worker_count_max": config.max_workers,
            "worker_count_min": 0,
            "count_planned": config.count_planned,
        },
    )


async def _drive(
    sup: Supervisor,
    config: DemoSettings,
    settings: Settings,
    console: Console,
    stop: asyncio.Event,
    model_dir: Path,
) -> tuple[list[int], float, int, float]:
    """Submit the analyses and show progress until they end and the workers reach 0.

    Returns the analysis ids, the wall time (submit -> last analysis final), the worker
    processes still alive when the display stopped (0 once the autoscaler scaled in) and
    the wall-clock time of the first submission.
    """
    from rich.live import Live

    from task_controller.requests import make_requests

    assert sup.client is not None
    await asyncio.to_thread(register_model, sup.client, config, model_dir)
    requests = make_requests(settings)
    ids = []
    started = time.monotonic()
    submitted_at = time.time()
    for k in range(1, config.analyses + 1):
        analysis_id = requests.create_analysis(
            f"demo-{k}",
            model_id=MODEL_ID,
            location_file=model_dir / "location.csv",
            accounts_file=model_dir / "account.csv",
            settings_file=model_dir / "analysis_settings.json",
        )
        requests.request(analysis_id, "inputs", options={"then_run": True})
        ids.append(analysis_id)
    done_at: float | None = None
    workers = 0
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            with requests.sessions() as session:
                rows = progress_rows(session, ids)
            live.update(render(sup.autoscaler, rows, time.monotonic() - started))
            if done_at is None and all(r["status"] in FINAL_STATUSES for r in rows):
                done_at = time.monotonic()
            if sup.autoscaler is not None:
                sup.autoscaler.track_processes()
            workers = sup.autoscaler.live_workers() if sup.autoscaler else 0
            if done_at is not None and (
                workers == 0 or time.monotonic() - done_at > config.drain_timeout_s
            ):
                break
            if stop.is_set():  # Ctrl-C, SIGTERM, or a service died
                console.print(
                    "[yellow]stopping: workers finish their running chunk first "
                    "(Ctrl-C again kills them) ..."
                )
                raise DemoInterruptedError("demo interrupted; stopping every process")
            if time.monotonic() - started > config.timeout_s:
                console.print(f"[red]demo timed out after {config.timeout_s:.0f} s")
                break
            await asyncio.sleep(config.refresh_s)
    return ids, (done_at or time.monotonic()) - started, workers, submitted_at


def run_demo(
    config: DemoSettings,
    *,
    env: dict[str, str],
    console: Console,
    autoscaling: AutoscalerSettings | None = None,
) -> DemoResult:
    """Run the whole demo; every process is stopped before this returns."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(env)
    if not env.get("OASIS_KEDA_STORAGE_DIR"):
        settings = settings.replace(storage_dir=config.out_dir / "storage")
    from oasis_keda.runtime.embedded_redis import free_port

    sup_config = SupervisorSettings(
        settings=settings,
        autoscaler=autoscaling or AutoscalerSettings(),
        api_port=free_port(),
    )
    model_dir = write_model(config)
    warm_s = warm_numba_cache(model_dir, env, console)
    if warm_s is not None:
        console.print(f"numba cache warm after {warm_s:.0f} s")
    sup = Supervisor(sup_config, env=env)
    console.print("starting Redis, the scaler, the controller, the API and the autoscaler ...")
    sup.start()
    try:
        settings = settings.replace(redis_url=sup.redis_url)
        sup.make_autoscaler()

        async def main() -> tuple[list[int], float, int, float]:
            stop = asyncio.Event()
            serving = asyncio.create_task(sup.serve(until=stop))
            try:
                return await _drive(sup, config, settings, console, stop, model_dir)
            finally:
                stop.set()
                await serving

        ids, wall_s, final_workers, submitted_at = asyncio.run(main())
        result = summarize(
            sup,
            settings,
            ids,
            wall_s,
            config,
            final_workers=final_workers,
            submitted_at=submitted_at,
        )
        return dataclasses.replace(result, warm_s=warm_s)
    finally:
        sup.stop()
