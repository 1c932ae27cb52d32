"""A Redis restart without persistence in the middle of a real oasislmf loss run: the
analysis completes and its outputs equal oasislmf's own unchunked run (the oracle of
``tests/oracle.py``). Real redis-server, controller and worker processes, the synthetic
model.

The first loss chunk is held after its work (the test hooks' pause) while Redis restarts
empty: the other chunks, the chord's state, the leases and the registry cache are lost.
The janitor rebuilds the registry and sends the chord again; the result must be the
oracle's, to the tolerance of the exactness suite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.core.registry import Registry
from oasis_keda.core.store import StoredFile
from oasis_keda.runtime.embedded_redis import EmbeddedRedis
from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model
from tests import oracle
from tests.faults.conftest import record
from tests.stack_support import Stack, running_stack, wait_for
from worker.oasis_env import prepare_process

pytestmark = pytest.mark.timeout(1800)  # a cold numba cache compiles for minutes

MODEL = "synth-fault"
LOCATIONS, EVENTS, SAMPLES, LOSS_CHUNKS = 12, 24, 6, 3


@pytest.fixture
def stack(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(own_redis.url, tmp_path) as stack:
        yield stack


def _settings() -> dict[str, Any]:
    settings = analysis_settings(SAMPLES)
    for key in ("gul_summaries", "il_summaries"):
        settings[key] = [{"id": 1, "ord_output": {"elt_sample": True, "elt_moment": True}}]
    return settings


def test_losses_after_a_redis_restart_equal_oasislmf(
    stack: Stack, own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    prepare_process()  # the oracle's oasislmf shares the worker's numba cache
    model = tmp_path / "model"
    write_synthetic_model(model, locations=LOCATIONS, events=EVENTS, seed=3)
    Registry(stack.controller.client).register(MODEL, model_dir=str(model))
    stack.start_controller()
    stack.start_worker(MODEL)
    settings_file = tmp_path / "analysis_settings.json"
    settings_file.write_text(json.dumps(_settings()), encoding="utf-8")
    analysis_id = stack.controller.create_analysis(
        "a",
        model_id=MODEL,
        location_file=model / "location.csv",
        accounts_file=model / "account.csv",
        settings_file=settings_file,
        chunking={"fixed_analysis_chunks": LOSS_CHUNKS},
    )
    stack.controller.generate(analysis_id)
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}, 900) == "READY"

    hold = {"pause_after_s": {"generate-losses-chunk-1": 6}}
    stack.controller.request(analysis_id, "losses", options=hold)
    wait_for(
        lambda: any(
            s.slug == "generate-losses-chunk-1" and s.status == "STARTED"
            for s in stack.subtasks(analysis_id)
        ),
        600,
        "the first loss chunk running",
    )
    started = time.monotonic()
    own_redis.stop()
    own_redis.start()
    status = stack.wait_status(analysis_id, {"RUN_COMPLETED", "RUN_ERROR"}, 600)
    recovered_s = time.monotonic() - started
    assert status == "RUN_COMPLETED", stack.log("controller")[-3000:]
    subs = stack.subtasks(analysis_id)
    assert any("the queue was lost" in (s.retry_log or "") for s in subs)

    with stack.controller.sessions() as session:
        stored = session.get(StoredFile, stack.analysis(analysis_id).output_file_id)
        assert stored is not None
        outputs = stack.controller.storage.abspath(stored.path).parent / "outputs"
    want = oracle.oracle_run(
        model,
        location=model / "location.csv",
        accounts=model / "account.csv",
        settings=_settings(),
        run_dir=tmp_path / "oracle" / "run",
    )
    oracle.assert_outputs_equal(outputs, want.output_dir, note="after a Redis restart")
    record(
        "redis restart without persistence, real loss run",
        recovered_s=round(recovered_s, 1),
        retried=[s.slug for s in subs if s.retry_count],
    )
