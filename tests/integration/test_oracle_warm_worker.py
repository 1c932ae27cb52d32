"""One warm worker process, many analyses: each one computed on its own model files.

A worker keeps its process between chunks of many analyses, and with it whatever oasislmf
and its libraries cache per process. Here ONE real ``oasis-keda worker serve`` process
(concurrency 1: the solo pool, tasks run in that process) serves one model id. Every
analysis is generated in 2 lookup chunks and run in 3 loss chunks, and its ORD outputs
(event loss tables, GUL and IL) must equal oasislmf's own unchunked ``model run``
(``tests/oracle.py``) on the model directory registered at the time, with the same
exposure and analysis settings. In a row:

a. the model registered with a synthetic model (seed 1) in directory D;
b. D rewritten in place with other data (seed 2) and the model registered again: equal to
   the oracle of the new data, and different from a's outputs;
c. the model registered again with a directory holding footprint sets ``s1`` and ``s2``
   (otherwise b's data), settings choosing ``s2``: equal to that oracle and different
   from b's outputs; the same analysis choosing ``s1`` differs from it;
d. analysis a's storage folder deleted, then another analysis (``s2`` again, so the
   memoised oracle of c): it completes and equals its oracle.

Every sub-task of every analysis ran on that one process (its pid in the sub-task records'
worker name), and it is still alive at the end. What this guards: fsspec caches the
model's ``LocalStorage('./static')`` per process, made absolute with the working directory
of the first run (``worker.script.forget_filesystems``); without the fix c computes on a's
model files and d fails on a's deleted folder. Steps b, c and d are each checked to the end
and their failures reported together, so one run shows every step a regression breaks.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.core.registry import Registry
from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC
from oasis_keda.core.store import StoredFile
from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model
from tests import oracle
from tests.stack_support import Stack, running_stack
from worker.oasis_env import prepare_process

#: Five analyses and three oracle runs of a small model; a cold numba cache adds minutes.
pytestmark = pytest.mark.timeout(1800)

MODEL = "warm"
LOCATIONS, EVENTS, SAMPLES = 20, 30, 6
LOOKUP_CHUNKS, LOSS_CHUNKS = 2, 3
DONE_INPUTS = {"READY", "INPUTS_GENERATION_ERROR", "INPUTS_GENERATION_CANCELLED"}
DONE_RUN = {"RUN_COMPLETED", "RUN_ERROR", "RUN_CANCELLED"}
TIMEOUT_S = 300
#: The event loss tables only: every other ORD kind adds pipeline processes to each oracle
#: run (seconds each on two cores), and what matters here is which model files a run reads.
ORD_KINDS = ("elt_sample", "elt_moment")


@dataclass(frozen=True)
class Done:
    """A finished analysis: its id and where its ORD outputs are."""

    analysis_id: int
    outputs: Path


def _settings(footprint_set: str | None = None) -> dict[str, Any]:
    """The synthetic model's analysis settings: explicit samples, event loss tables."""
    settings = analysis_settings(SAMPLES, footprint_set=footprint_set)
    for key in ("gul_summaries", "il_summaries"):
        settings[key] = [{"id": 1, "ord_output": dict.fromkeys(ORD_KINDS, True)}]
    return settings


def _stored(stack: Stack, file_id: int | None) -> Path:
    assert file_id is not None
    with stack.controller.sessions() as session:
        stored = session.get(StoredFile, file_id)
        assert stored is not None
        return stack.controller.storage.abspath(stored.path)


def _errors(stack: Stack, analysis_id: int) -> str:
    """The sub-tasks of the current run that did not complete: the last line of each error
    log (the exception), then the end of the log."""
    lines = []
    for sub in stack.subtasks(analysis_id):
        if sub.status != "COMPLETED":
            log = (sub.error_log or "").strip()
            last = log.splitlines()[-1] if log else ""
            lines.append(f"{sub.slug} {sub.status}: {last}" + (f"\n{log[-1500:]}" if log else ""))
    return "\n".join(lines)


def _analysis(
    stack: Stack, model: Path, settings: dict[str, Any], name: str, worker_pid: int
) -> Done:
    """Create, generate and run an analysis of ``model``'s exposure on one worker."""
    settings_file = stack.tmp_path / f"{name}.analysis_settings.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    analysis_id = stack.controller.create_analysis(
        name,
        model_id=MODEL,
        location_file=model / "location.csv",
        accounts_file=model / "account.csv",
        settings_file=settings_file,
        chunking={"fixed_lookup_chunks": LOOKUP_CHUNKS, "fixed_analysis_chunks": LOSS_CHUNKS},
    )
    generate = stack.controller.generate(analysis_id)
    status = stack.wait_status(analysis_id, DONE_INPUTS, TIMEOUT_S)
    assert status == "READY", f"{name}: {status}\n{_errors(stack, analysis_id)}"
    run = stack.controller.run(analysis_id)
    status = stack.wait_status(analysis_id, DONE_RUN, TIMEOUT_S)
    assert status == "RUN_COMPLETED", f"{name}: {status}\n{_errors(stack, analysis_id)}"
    for number, spec, chunks in (
        (generate, INPUTS_SPEC, LOOKUP_CHUNKS),
        (run, LOSSES_SPEC, LOSS_CHUNKS),
    ):
        subs = stack.subtasks(analysis_id, number)
        assert [s.slug for s in subs] == spec.slugs(chunks), name
        workers = {s.worker for s in subs}
        assert all(f"{MODEL}.{worker_pid}@" in (w or "") for w in workers), (name, workers)
    outputs = _stored(stack, stack.analysis(analysis_id).output_file_id).parent / "outputs"
    return Done(analysis_id, outputs)


def _oracle(model: Path, settings: dict[str, Any], run_dir: Path) -> oracle.OracleRun:
    return oracle.oracle_run(
        model,
        location=model / "location.csv",
        accounts=model / "account.csv",
        settings=settings,
        run_dir=run_dir,
    )


def _differ(a: Path, b: Path) -> bool:
    try:
        oracle.assert_outputs_equal(a, b)
    except AssertionError:
        return True
    return False


class Steps:
    """Runs steps to the end and reports every failed one at once (a step that needs an
    earlier step's outputs finds None there if that one failed)."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        except AssertionError as exc:
            self.failures.append(f"step {name}: {exc}")
        finally:
            print(f"step {name}: {time.monotonic() - start:.1f} s")

    def check(self) -> None:
        if self.failures:
            pytest.fail("\n\n".join(self.failures), pytrace=False)


def test_one_warm_worker_computes_each_analysis_on_its_own_model_files(
    redis_url: str, tmp_path: Path
) -> None:
    prepare_process()  # the oracle's oasislmf shares the worker's numba cache
    d_dir, sets_dir = tmp_path / "model-d", tmp_path / "model-sets"
    steps = Steps()
    with running_stack(redis_url, tmp_path) as stack:
        registry = Registry(stack.controller.client)

        def register(model: Path) -> None:
            registry.register(MODEL, model_dir=str(model))

        # a. the first analysis of the process, on D (seed 1)
        write_synthetic_model(d_dir, locations=LOCATIONS, events=EVENTS, seed=1)
        register(d_dir)
        stack.start_controller()
        worker = stack.start_worker(MODEL)
        with steps.step("a"):
            first = _analysis(stack, d_dir, _settings(), "a", worker.pid)
            want_a = _oracle(d_dir, _settings(), tmp_path / "oracle-a" / "run")
            oracle.assert_outputs_equal(first.outputs, want_a.output_dir, note="a")
        steps.check()  # the later steps mean nothing without a first run

        # b. D rewritten in place with other data (exposure too: a new oracle), registered again
        write_synthetic_model(d_dir, locations=LOCATIONS, events=EVENTS, seed=2)
        register(d_dir)
        b_out: Path | None = None
        with steps.step("b"):
            b = _analysis(stack, d_dir, _settings(), "b", worker.pid)
            b_out = b.outputs
            want_b = _oracle(d_dir, _settings(), tmp_path / "oracle-b" / "run")
            assert want_b.run_dir != want_a.run_dir, "b: the oracle memo returned a's run"
            oracle.assert_outputs_equal(b.outputs, want_b.output_dir, note="b")
            assert _differ(b.outputs, first.outputs), "b: the new data gave a's outputs"

        # c. another directory, footprint sets s1 and s2 (else b's data), s2 chosen
        write_synthetic_model(
            sets_dir, locations=LOCATIONS, events=EVENTS, seed=2, footprint_sets=("s1", "s2")
        )
        assert not (sets_dir / "model_data" / "footprint.bin").exists()
        register(sets_dir)
        want_c: oracle.OracleRun | None = None
        with steps.step("c"):
            c = _analysis(stack, sets_dir, _settings("s2"), "c", worker.pid)
            want_c = _oracle(sets_dir, _settings("s2"), tmp_path / "oracle-c" / "run")
            oracle.assert_outputs_equal(c.outputs, want_c.output_dir, note="c")
            if b_out is not None:
                assert _differ(c.outputs, b_out), "c: footprint set s2 gave b's outputs"
            c_s1 = _analysis(stack, sets_dir, _settings("s1"), "c-s1", worker.pid)
            assert _differ(c_s1.outputs, c.outputs), "c: footprint sets s1 and s2 gave one result"

        # d. the first analysis's folder gone, then another analysis (c's inputs)
        first_dir = stack.controller.storage.analysis_dir(first.analysis_id)
        assert first_dir.is_dir()
        shutil.rmtree(first_dir)
        with steps.step("d"):
            d = _analysis(stack, sets_dir, _settings("s2"), "d", worker.pid)
            want_d = _oracle(sets_dir, _settings("s2"), tmp_path / "oracle-d" / "run")
            assert want_c is None or want_d is want_c, "d: c's oracle was not reused"
            oracle.assert_outputs_equal(d.outputs, want_d.output_dir, note="d")

        assert worker.poll() is None, "the worker process ended"
    steps.check()
