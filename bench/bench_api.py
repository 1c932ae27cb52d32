"""Latency from ``POST /run/`` to the first worker starting, on an idle model.

The whole local runtime (``oasis-keda up``'s supervisor: its own embedded Redis, the
scaler, the controller, the API, the local KEDA + HPA autoscaler with workers as
processes) runs on the built-in synthetic model. Inputs are generated once through the
API; then, 10 times: wait until the autoscaler has taken the model to 0 workers, send
``POST /v2/analyses/{id}/run/`` with a bearer token, and time

* until the autoscaler has started a worker process (scale from zero), and
* until the first loss sub-task is STARTED on it (the worker has booted, imported
  oasislmf and taken the task): the time a user waits before work begins,

then wait for RUN_COMPLETED. Reported: p50, min and max over the trials.

Run alone: ``python -m bench.bench_api``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.runtime.embedded_redis import free_port

TRIALS = 10
MODEL = "bench-api-synth"
POLL_S = 0.005
IDLE_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 300.0
USER, PASSWORD = "admin", "password"  # the local runtime's default login


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _wait(check: Any, what: str, timeout_s: float, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(poll_s)


class _Runtime:
    """The supervisor started, with its autoscaler running in a background thread."""

    def __init__(self, root: Path) -> None:
        from oasis_keda.runtime.supervisor import Supervisor, SupervisorSettings

        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OASIS_KEDA_REDIS_URL", "OASIS_KEDA_API_USER", "OASIS_KEDA_API_PASSWORD")
        }
        config = SupervisorSettings(
            settings=Settings(storage_dir=root / "storage"), api_port=free_port()
        )
        self.sup = Supervisor(config, env=env)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._serve, name="autoscaler", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.stop_event = asyncio.Event()
        self.loop.run_until_complete(self.sup.serve(until=self.stop_event))

    def start(self) -> None:
        self.sup.start()
        self.sup.make_autoscaler()
        self.thread.start()

    def live_workers(self) -> int:
        autoscaler = self.sup.autoscaler
        return 0 if autoscaler is None else autoscaler.live_workers()

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=120)
        autoscaler = self.sup.autoscaler
        if autoscaler is not None:
            asyncio.run(autoscaler.shutdown())
        self.sup.stop()


def _first_start(settings: Settings, analysis_id: int) -> dt.datetime | None:
    from sqlalchemy import func, select

    from oasis_keda.core.store import Analysis, SubTask, make_engine

    engine = make_engine(settings.effective_database_url, create=False)
    try:
        with engine.connect() as conn:
            run_number = conn.scalar(select(Analysis.run_number).where(Analysis.id == analysis_id))
            value = conn.scalar(
                select(func.min(SubTask.start_time)).where(
                    SubTask.analysis_id == analysis_id, SubTask.run_number == run_number
                )
            )
    finally:
        engine.dispose()
    return value if isinstance(value, dt.datetime) else None


def measure() -> dict[str, list[float]]:
    from oasislmf.platform_api.client import APIClient

    from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model

    spawn_s: list[float] = []
    start_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="oasis-keda-bench-api-") as tmp:
        root = Path(tmp)
        model = write_synthetic_model(root / "model")
        rt = _Runtime(root)
        rt.start()
        try:
            assert rt.sup.client is not None and rt.sup.api_url is not None
            Registry(rt.sup.client).register(
                MODEL,
                supplier_id="OasisKeda",
                model_name="Synth",
                version_id="1",
                model_dir=str(model.root),
            )
            client = APIClient(api_url=rt.sup.api_url, username=USER, password=PASSWORD)
            model_pk = client.models.search({"model_id": "Synth"}).json()[0]["id"]
            portfolio = client.upload_inputs(
                portfolio_name="bench",
                location_fp=str(model.root / "location.csv"),
                accounts_fp=str(model.root / "account.csv"),
            )
            analysis_id = client.create_analysis(portfolio["id"], model_pk, "bench")["id"]
            client.upload_settings(analysis_id, analysis_settings())
            if not client.run_generate(analysis_id, poll_interval=0.2):
                raise RuntimeError("input generation failed")
            session = requests.Session()
            session.headers["authorization"] = client.api.headers["authorization"]
            run_url = f"{rt.sup.api_url}/v2/analyses/{analysis_id}/run/"
            settings = rt.sup.config.settings
            for _ in range(TRIALS):
                _wait(lambda: rt.live_workers() == 0, "0 workers", IDLE_TIMEOUT_S)
                posted_wall = _utcnow()
                t0 = time.perf_counter()
                r = session.post(run_url, json={}, timeout=25)
                if r.status_code == 401:  # access token expired during a long bench
                    client.api._refresh_token()
                    session.headers["authorization"] = client.api.headers["authorization"]
                    r = session.post(run_url, json={}, timeout=25)
                r.raise_for_status()
                _wait(lambda: rt.live_workers() >= 1, "a worker", IDLE_TIMEOUT_S, POLL_S)
                spawn_s.append(time.perf_counter() - t0)
                _wait(
                    lambda: _first_start(settings, analysis_id) is not None,
                    "the first sub-task to start",
                    RUN_TIMEOUT_S,
                    0.02,
                )
                first = _first_start(settings, analysis_id)
                assert first is not None
                start_s.append((first - posted_wall).total_seconds())
                _wait(
                    lambda: (
                        client.analyses.status(analysis_id).startswith("RUN_")
                        and client.analyses.status(analysis_id) not in ("RUN_QUEUED", "RUN_STARTED")
                    ),
                    "the run to end",
                    RUN_TIMEOUT_S,
                    0.2,
                )
                status = client.analyses.status(analysis_id)
                if status != "RUN_COMPLETED":
                    raise RuntimeError(f"run ended {status}")
        finally:
            rt.stop()
    return {"spawn_s": spawn_s, "start_s": start_s}


def _row(label: str, values: list[float]) -> str:
    return (
        f"| {label} | **{statistics.median(values):.2f} s** | {min(values):.2f} s "
        f"| {max(values):.2f} s |"
    )


def run(settings: Settings) -> str:
    del settings  # the runtime brings its own Redis, storage and database
    result = measure()
    machine = (
        f"Command: `make bench` (module `bench/bench_api.py`); machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; local runtime (supervisor "
        "of `oasis-keda up`: embedded Redis, scaler, controller, API, local autoscaler with "
        "polling 1 s, cooldown 5 s), built-in synthetic model, SQLite records DB."
    )
    lines = [
        "## API: POST /run/ to the first worker on an idle model",
        "",
        machine,
        "",
        f"{TRIALS} trials, each starting from 0 workers.",
        "",
        "| measure | p50 | min | max |",
        "|---|---|---|---|",
        _row("POST /run/ -> worker process started (scale from zero)", result["spawn_s"]),
        _row("POST /run/ -> first loss sub-task STARTED", result["start_s"]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(Settings.from_env(os.environ)))
