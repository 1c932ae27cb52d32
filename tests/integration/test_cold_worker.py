"""A worker that starts with work already waiting (a scale-up from zero).

One real ``oasis-keda worker serve`` process is started after the analysis's inputs were
requested, so its first sub-task arrives while its oasislmf imports still run in the
background (``worker/warmup.py``). It must take the work at once, run every sub-task, and
produce the ORD outputs of oasislmf's own unchunked ``model run`` (``tests/oracle.py``).
Its readiness file appears only after the warm-up is done, and is gone after its warm
shutdown.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from oasis_keda.core.registry import Registry
from oasis_keda.core.store import StoredFile
from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model
from tests import oracle
from tests.stack_support import running_stack, wait_for
from worker.oasis_env import prepare_process

pytestmark = pytest.mark.timeout(900)

MODEL = "cold"
DONE_INPUTS = {"READY", "INPUTS_GENERATION_ERROR", "INPUTS_GENERATION_CANCELLED"}
DONE_RUN = {"RUN_COMPLETED", "RUN_ERROR", "RUN_CANCELLED"}
SETTINGS = analysis_settings(6)


def test_a_cold_worker_takes_waiting_work_and_is_ready_only_once_warm(
    redis_url: str, tmp_path: Path
) -> None:
    prepare_process()  # the oracle's oasislmf shares the worker's numba cache
    model = write_synthetic_model(tmp_path / "model", locations=20, events=30, seed=3).root
    settings_file = tmp_path / "analysis_settings.json"
    settings_file.write_text(json.dumps(SETTINGS), encoding="utf-8")
    ready = tmp_path / "worker.ready"
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL, model_dir=str(model))
        stack.start_controller()
        analysis_id = stack.controller.create_analysis(
            "cold",
            model_id=MODEL,
            location_file=model / "location.csv",
            accounts_file=model / "account.csv",
            settings_file=settings_file,
            chunking={"fixed_lookup_chunks": 2, "fixed_analysis_chunks": 3},
        )
        stack.controller.generate(analysis_id)  # waits in the queue: no worker yet
        worker = stack.start(
            "worker", "serve", "--model", MODEL, "--ready-file", str(ready), name="worker"
        )
        wait_for(ready.exists, 120, "the readiness file")
        log = stack.log("worker")
        assert "warm-up done" in log, log[-3000:]  # written before the file
        assert stack.wait_status(analysis_id, DONE_INPUTS, 300) == "READY"
        stack.controller.run(analysis_id)
        assert stack.wait_status(analysis_id, DONE_RUN, 300) == "RUN_COMPLETED"
        workers = {s.worker for s in stack.subtasks(analysis_id)}
        assert all(f".{worker.pid}@" in (w or "") for w in workers), workers
        with stack.controller.sessions() as session:
            stored = session.get(StoredFile, stack.analysis(analysis_id).output_file_id)
            assert stored is not None
            outputs = stack.controller.storage.abspath(stored.path).parent / "outputs"
        want = oracle.oracle_run(
            model,
            location=model / "location.csv",
            accounts=model / "account.csv",
            settings=SETTINGS,
            run_dir=tmp_path / "oracle" / "run",
        )
        oracle.assert_outputs_equal(outputs, want.output_dir)
        os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown: not ready any more
        worker.wait(timeout=60)
        assert not ready.exists()
