"""Prometheus endpoints of the scaler, the controller, a worker and the API, scraped and
parsed as Prometheus would (prometheus_client's exposition parser).

Covers: the scaler's per-model decision gauges and RPC latency by method and code; the
controller's dispatched stages and their chunk counts and a worker's sub-task durations by
step and outcome, from real processes started with ``--metrics-port``; the API's requests
by route template and status.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from oasis_keda.core.metrics import serve
from oasis_keda.core.registry import Registry
from oasis_keda.runtime.embedded_redis import free_port
from oasis_keda.testing.noop_stage import NOOP_SPEC
from tests.scaler_support import desired, register, running_scaler, scaler_stub
from tests.stack_support import running_stack


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_scaler_metrics(redis_url: str, redis_client: redis.Redis) -> None:
    register(redis_client, "mx", scaling_strategy="QUEUE_LOAD")
    redis_client.hset("oasis-keda:main:{mx}", "1:losses", "5:1000")
    port = free_port()
    async with (
        running_scaler(redis_url, metrics_port=port) as server,
        scaler_stub(server.port) as stub,
    ):
        assert await desired(stub, "mx") == 1
        samples = scrape(port)
    assert value(samples, "oasis_keda_scaler_desired", model="mx") == 1
    assert value(samples, "oasis_keda_scaler_main_tasks", model="mx") == 1
    assert (
        value(samples, "oasis_keda_scaler_rpc_seconds_count", method="GetMetrics", code="OK") >= 1
    )


def test_controller_and_worker_metrics(redis_url: str, tmp_path: Path) -> None:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register("metrics-model")
        worker_port, controller_port = free_port(), free_port()
        stack.start(
            "controller", "serve", "--metrics-port", str(controller_port), name="controller"
        )
        stack.start(
            "worker", "serve", "--model", "metrics-model", "--metrics-port", str(worker_port),
            name="worker",
        )  # fmt: skip
        stack.wait_log("worker", "ready.")
        locations = tmp_path / "location.csv"
        locations.write_text(
            "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,"
            "Latitude,Longitude\n1,1,1,GB,WTC,GBP,52.1,-0.2\n"
        )
        analysis_id = stack.controller.create_analysis(
            "m", model_id="metrics-model", location_file=locations
        )
        stack.controller.request(analysis_id, "noop", options={"noop_chunks": 3})
        assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
        worker, controller = scrape(worker_port), scrape(controller_port)
    all_steps = (*NOOP_SPEC.before, NOOP_SPEC.chunk, *NOOP_SPEC.after)
    steps = {s.task.rsplit(".", 1)[-1].replace("_", "-") for s in all_steps}
    completed = [
        value(worker, "oasis_keda_subtask_seconds_count", step=step, outcome="completed")
        for step in steps
    ]
    assert sum(completed) >= len(NOOP_SPEC.slugs(3)), worker
    assert value(controller, "oasis_keda_stage_dispatches_total", stage="noop", outcome="sent") == 1
    assert value(controller, "oasis_keda_stage_chunks_count", stage="noop") == 1
    assert value(controller, "oasis_keda_stage_chunks_sum", stage="noop") == 3


def test_api_metrics(redis_url: str, tmp_path: Path) -> None:
    from tests.integration.api_support import api_settings, start_server

    server = start_server(api_settings(redis_url, tmp_path))
    metrics = serve(free_port(), host="127.0.0.1")
    assert metrics is not None
    try:
        session = server.session()
        assert session.get(f"{server.url}/v2/analyses/", timeout=10).status_code == 200
        assert session.get(f"{server.url}/v2/analyses/987654/", timeout=10).status_code == 404
        deadline = time.monotonic() + 5
        while True:
            samples = scrape(metrics.port)
            ok = value(samples, "oasis_keda_api_requests_total",
                       route="/v2/analyses/", method="GET", status="200")  # fmt: skip
            if ok >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        metrics.close()
        server.stop()
    assert ok >= 1
    assert value(samples, "oasis_keda_api_requests_total",
                 route="/v2/analyses/{pk}/", method="GET", status="404") >= 1  # fmt: skip
