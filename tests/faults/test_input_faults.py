"""Faults a new user brings: bad location files, out-of-range configuration, a worker
killed mid-chunk (real redis-server, controller, worker and API processes; the CLI as a
user types it).

Covers: each bad location file is refused with its message: an empty file or one not in
UTF-8 by ``analyses create`` (nothing is recorded); a first line over 128 KiB or only a
header ends ``oasis-keda analyses generate --wait`` in INPUTS_GENERATION_ERROR, in seconds,
and nothing stays queued; out-of-range values are refused by
the CLI and the API with the same message, nothing is stored, the scaler keeps answering
from the stored configuration and the manifests stay in int32; a worker SIGKILLed
mid-chunk: the chunk runs again elsewhere, its record shows the retry, the analysis
completes, and the janitor removes the dead worker's temporary directory (not a live
one's).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.core.store import Analysis
from oasis_keda.runtime.embedded_redis import EmbeddedRedis
from task_controller.scratch_cleanup import scratch_dir
from tests.faults.conftest import record
from tests.integration.api_support import api_settings, start_server
from tests.stack_support import Stack, cli, running_stack, wait_for

MODEL = "fault-model"
HEADER = "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency"
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def stack(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(own_redis.url, tmp_path) as stack:
        yield stack


def _oasis_keda(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli(), *args], env=stack.env, capture_output=True, text=True, timeout=120, check=False
    )


#: Each bad file: its bytes, where it is refused (``create``: by ``analyses create``, which
#: reads the format and the columns; ``generate``: by the dispatch that counts its rows), and
#: the message.
BAD_FILES = {
    "first line over 128 KiB": (
        f"{HEADER},{'x' * (129 * 1024)}\n1,1,1,GB,WTC,GBP,1\n".encode(),
        "generate",
        "field larger than field limit",
    ),
    "empty": (b"", "create", "is neither CSV (UTF-8 text with a header row) nor parquet"),
    "only a header": (f"{HEADER}\n".encode(), "generate", "has a header but no location rows"),
    "not UTF-8": (
        f"{HEADER}\n1,1,1,GB,WTC,GBP\n".encode("utf-16"),
        "create",
        "is neither CSV (UTF-8 text with a header row) nor parquet",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_location_files_end_in_error(stack: Stack, tmp_path: Path, case: str) -> None:
    content, where, message = BAD_FILES[case]
    Registry(stack.controller.client).register(MODEL)
    stack.start_controller()
    location = tmp_path / "location.csv"
    location.write_bytes(content)
    created = _oasis_keda(
        stack, "analyses", "create", "a", "--model", MODEL, "--locations", str(location)
    )
    if where == "create":
        assert created.returncode != 0
        assert message in created.stderr and str(location) in created.stderr
        with stack.controller.sessions() as session:
            assert session.query(Analysis).count() == 0  # nothing half-written
        record(f"bad location file: {case}", refused_at="analyses create")
        return
    assert created.returncode == 0, created.stderr
    analysis_id = created.stdout.strip().splitlines()[-1]
    started = time.monotonic()
    generated = _oasis_keda(stack, "analyses", "generate", analysis_id, "--wait", "--timeout", "60")
    took_s = time.monotonic() - started
    assert generated.returncode != 0
    assert "INPUTS_GENERATION_ERROR" in generated.stderr
    assert message in generated.stderr
    client = stack.controller.client
    # the scaler sees no work left (the mark goes just after the error status is written)
    wait_for(lambda: not client.hlen(keys.main_tasks(MODEL)), 5, "the main task to be cleared")
    assert all(client.llen(q) == 0 for q in keys.queue_lists(keys.default_queue(MODEL)))
    record(f"bad location file: {case}", error_after_s=round(took_s, 1))


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("scaling", {"worker_count_fixed": 100_000_000_000_000}, "worker_count_fixed"),
        ("scaling", {"worker_count_max": 3_000_000_000}, "worker_count_max"),
        ("scaling", {"chunks_per_worker": 0}, "chunks_per_worker"),
        ("chunking", {"fixed_analysis_chunks": 10**30}, "fixed_analysis_chunks"),
    ],
)
def test_out_of_range_configuration_is_refused_everywhere(
    stack: Stack, tmp_path: Path, kind: str, body: dict[str, object], field: str
) -> None:
    client = stack.controller.client
    Registry(client).register(MODEL, supplier_id="S", model_name="M", version_id="1")
    before = Registry(client).get(MODEL)
    refused = _oasis_keda(stack, "models", kind, MODEL, "--set", json.dumps(body))
    assert refused.returncode != 0
    assert "stored configuration unchanged" in refused.stderr

    settings = api_settings(stack.env["OASIS_KEDA_REDIS_URL"], tmp_path / "storage")
    server = start_server(settings)
    try:
        r = server.session().post(
            f"{server.url}/v2/models/{before.pk}/{kind}_configuration/", json=body, timeout=10
        )
    finally:
        server.stop()
    assert r.status_code == 400
    assert f"{field}: {r.json()[field]}" in refused.stderr  # the same words

    after = Registry(client).get(MODEL)
    assert (after.scaling, after.chunking) == (before.scaling, before.chunking)
    shown = _oasis_keda(stack, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)["models"]
    assert row["desired"] == 0  # the scaler answers from the stored, valid configuration
    manifests = _oasis_keda(stack, "manifests", "model", MODEL)
    assert manifests.returncode == 0, manifests.stderr
    for doc in yaml.safe_load_all(manifests.stdout):
        if doc and doc.get("kind") == "ScaledObject":
            assert 1 <= doc["spec"]["maxReplicaCount"] < 2**31


def test_worker_sigkill_mid_chunk_is_retried_and_recorded(
    stack: Stack, tmp_path: Path, own_redis: EmbeddedRedis
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    Registry(client).register(MODEL)
    stack.start_controller()
    worker = stack.start_worker(MODEL)
    location = tmp_path / "location.csv"
    location.write_text(f"{HEADER},Latitude,Longitude\n1,1,1,GB,WTC,GBP,52.1,-0.2\n")
    analysis_id = stack.controller.create_analysis("a", model_id=MODEL, location_file=location)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 3, "noop_sleep_s": 3})
    running: list[str] = []

    def a_chunk_running() -> bool:
        running[:] = [
            s.slug
            for s in stack.subtasks(analysis_id)
            if s.slug.startswith("noop-chunk") and s.status == "STARTED"
        ]
        return bool(running)

    wait_for(a_chunk_running, 60, "a chunk running")
    # the worker's temporary directory, by the convention workers follow (filled as a
    # chunk would fill it); the janitor must remove it once the worker is gone
    scratch = scratch_dir(f"{MODEL}.{worker.pid}@{socket.gethostname()}")
    scratch.mkdir(exist_ok=True)
    (scratch / "chunk-output.bin").write_bytes(b"\0" * (1 << 20))
    killed_at = time.monotonic()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    worker2 = stack.start_worker(MODEL, name="worker2")
    live_scratch = scratch_dir(f"{MODEL}.{worker2.pid}@{socket.gethostname()}")
    live_scratch.mkdir(exist_ok=True)
    status = stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}, 120)
    recovered_s = time.monotonic() - killed_at
    assert status == "READY"
    subs = {s.slug: s for s in stack.subtasks(analysis_id)}
    rerun = subs[running[0]]
    assert rerun.status == "COMPLETED"
    assert rerun.retry_count == 1
    assert f".{worker.pid}@" in (rerun.retry_log or "") and "was lost with its worker" in (
        rerun.retry_log or ""
    )
    wait_for(lambda: not scratch.exists(), 30, "the dead worker's temporary directory removed")
    removed_s = time.monotonic() - killed_at
    assert live_scratch.exists()  # a live worker's is kept
    live_scratch.rmdir()
    client.close()
    record(
        "worker SIGKILL mid-chunk",
        recovered_s=round(recovered_s, 1),
        scratch_removed_s=round(removed_s, 1),
    )
