"""Whole analyses on oasislmf through the controller and real worker processes, on the
built-in synthetic model.

Covers: an analysis at 3 lookup and 4 loss chunks on a real worker writes the input files
and the ORD outputs of oasislmf's own unchunked run (the oracle), and its sub-task records
match the plan, its GUL and FM input files written side by side and merged before READY;
a portfolio without accounts (no FM input files) equals oasislmf's too; under ``-m
slow``, 8 lookup and 10 loss chunks, and a worker SIGKILLed after a loss chunk wrote its output but before it was acknowledged: the chunk runs again
elsewhere and the outputs still equal the oracle's; bad input (non-numeric coordinates, an empty
location file) ends in INPUTS_GENERATION_ERROR with the message in a sub-task's error log and
nothing reported complete.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from oasis_keda.core.registry import Registry
from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC
from oasis_keda.core.store import StoredFile
from oasis_keda.runtime.synth import write_synthetic_model
from tests import oracle
from tests.stack_support import Stack, running_stack, wait_for

pytest.importorskip("worker.lookup")
pytest.importorskip("worker.losses")

#: A cold numba cache compiles the pipeline tools once (minutes); later runs take seconds.
pytestmark = pytest.mark.timeout(900)

MODEL = "synth"
DONE_INPUTS = {"READY", "INPUTS_GENERATION_ERROR", "INPUTS_GENERATION_CANCELLED"}
DONE_RUN = {"RUN_COMPLETED", "RUN_ERROR", "RUN_CANCELLED"}
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_model(root, locations=30, events=40, seed=3)
    return root


@pytest.fixture
def stack(redis_url: str, tmp_path: Path, model_dir: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL, model_dir=str(model_dir))
        stack.start_controller()
        yield stack


def _create(
    stack: Stack, model_dir: Path, *, chunking: dict[str, object], locations: Path | None = None
) -> int:
    return stack.controller.create_analysis(
        "a",
        model_id=MODEL,
        location_file=locations or model_dir / "location.csv",
        accounts_file=model_dir / "account.csv",
        settings_file=model_dir / "analysis_settings.json",
        chunking={**chunking},
    )


def _file(stack: Stack, file_id: int | None) -> Path:
    assert file_id is not None
    with stack.controller.sessions() as session:
        stored = session.get(StoredFile, file_id)
        assert stored is not None
        return stack.controller.storage.abspath(stored.path)


def _generate(stack: Stack, analysis_id: int) -> Path:
    stack.controller.generate(analysis_id)
    assert stack.wait_status(analysis_id, DONE_INPUTS, TIMEOUT_S) == "READY"
    return _file(stack, stack.analysis(analysis_id).lookup_success_file_id)


def _run(stack: Stack, analysis_id: int, **options: object) -> Path:
    stack.controller.request(analysis_id, "losses", options=dict(options))
    assert stack.wait_status(analysis_id, DONE_RUN, TIMEOUT_S) == "RUN_COMPLETED"
    return _file(stack, stack.analysis(analysis_id).output_file_id).parent / "outputs"


@pytest.fixture(scope="module")
def synth_oracle(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> oracle.OracleRun:
    return oracle.oracle_run(
        model_dir,
        location=model_dir / "location.csv",
        accounts=model_dir / "account.csv",
        settings=model_dir / "analysis_settings.json",
        run_dir=tmp_path_factory.mktemp("oracle") / "run",
    )


def _inputs_dir(stack: Stack, analysis_id: int) -> Path:
    return _file(stack, stack.analysis(analysis_id).input_file_id).parent / "inputs"


def test_chunked_analysis_equals_oasislmf(
    stack: Stack, model_dir: Path, synth_oracle: oracle.OracleRun
) -> None:
    stack.start_worker(MODEL)
    analysis_id = _create(
        stack, model_dir, chunking={"fixed_lookup_chunks": 3, "fixed_analysis_chunks": 4}
    )
    _generate(stack, analysis_id)
    subs = stack.subtasks(analysis_id)
    assert [s.slug for s in subs] == INPUTS_SPEC.slugs(3)
    assert all(s.status == "COMPLETED" and s.output_log for s in subs)
    assert stack.analysis(analysis_id).lookup_chunks == 3
    # READY names the merged directory of input files: both parts written, then merged
    inputs = _file(stack, stack.analysis(analysis_id).input_file_id)
    assert inputs.is_dir() and inputs == _inputs_dir(stack, analysis_id)
    assert sorted(p.name for p in inputs.parent.glob("inputs*")) == ["inputs"]
    by_slug = {s.slug: s for s in subs}
    cleanup = by_slug["cleanup-input-generation"]
    for slug in ("write-input-files", "write-fm-input-files"):
        assert by_slug[slug].end_time <= cleanup.start_time  # type: ignore[operator]
        assert by_slug[slug].start_time >= by_slug["collect-keys"].end_time  # type: ignore[operator]
    oracle.assert_inputs_equal(inputs, synth_oracle.input_dir)

    outputs = _run(stack, analysis_id)
    oracle.assert_outputs_equal(outputs, synth_oracle.output_dir, note="real workers")
    subs = stack.subtasks(analysis_id)
    assert [s.slug for s in subs] == LOSSES_SPEC.slugs(4)
    assert all(s.status == "COMPLETED" and s.output_log for s in subs)
    times = [(s.start_time, s.end_time) for s in subs]
    assert all(a is not None and b is not None and a <= b for a, b in times)
    analysis = stack.analysis(analysis_id)
    assert analysis.num_events_total == 40
    assert analysis.num_events_complete == 40


def test_gul_only_portfolio_input_files_equal_oasislmf(
    stack: Stack, model_dir: Path, tmp_path: Path
) -> None:
    stack.start_worker(MODEL)
    analysis_id = stack.controller.create_analysis(
        "gul-only",
        model_id=MODEL,
        location_file=model_dir / "location.csv",
        accounts_file=None,
        settings_file=model_dir / "analysis_settings.json",
        chunking={"fixed_lookup_chunks": 2},
    )
    stack.controller.generate(analysis_id)
    assert stack.wait_status(analysis_id, DONE_INPUTS, TIMEOUT_S) == "READY"
    fm = {s.slug: s for s in stack.subtasks(analysis_id)}["write-fm-input-files"]
    assert fm.status == "COMPLETED" and "no FM input files" in (fm.output_log or "")
    inputs = _inputs_dir(stack, analysis_id)
    assert not list(inputs.glob("fm_*"))
    want = oracle.oracle_run(
        model_dir,
        location=model_dir / "location.csv",
        accounts=None,
        settings=model_dir / "analysis_settings.json",
        run_dir=tmp_path / "oracle" / "run",
    )
    oracle.assert_inputs_equal(inputs, want.input_dir)


@pytest.mark.slow
def test_more_chunks_equal_oasislmf(
    stack: Stack, model_dir: Path, synth_oracle: oracle.OracleRun
) -> None:
    stack.start_worker(MODEL)
    many = _create(
        stack, model_dir, chunking={"fixed_lookup_chunks": 8, "fixed_analysis_chunks": 10}
    )
    _generate(stack, many)
    oracle.assert_inputs_equal(_inputs_dir(stack, many), synth_oracle.input_dir)
    oracle.assert_outputs_equal(_run(stack, many), synth_oracle.output_dir, note="10 chunks")


@pytest.mark.slow  # the trivial-stage version runs in the default suite (test_worker_faults)
def test_worker_killed_after_a_loss_chunk_outputs_equal_oasislmf(
    stack: Stack, model_dir: Path, synth_oracle: oracle.OracleRun
) -> None:
    worker = stack.start_worker(MODEL)
    faulty = _create(stack, model_dir, chunking={"fixed_analysis_chunks": 3})
    _generate(stack, faulty)
    slug = "generate-losses-chunk-2"
    stack.controller.request(faulty, "losses", options={"pause_after_s": {slug: 4}})
    run_root = stack.controller.storage.run_dirs(faulty, stack.analysis(faulty).run_number).root
    wait_for(lambda: (run_root / f".paused-{slug}").exists(), TIMEOUT_S, "chunk 2 done, unacked")
    os.killpg(worker.pid, signal.SIGKILL)  # the pod dies: its chunk output is on the volume
    worker.wait(timeout=10)
    worker2 = stack.start_worker(MODEL, name="worker2")
    assert stack.wait_status(faulty, DONE_RUN, TIMEOUT_S) == "RUN_COMPLETED"
    outputs = _file(stack, stack.analysis(faulty).output_file_id).parent / "outputs"
    oracle.assert_outputs_equal(outputs, synth_oracle.output_dir, note="after a SIGKILL")
    rerun = next(s for s in stack.subtasks(faulty) if s.slug == slug)
    assert f".{worker2.pid}@" in (rerun.worker or "")
    assert "restored task" in stack.log("controller")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "Latitude"),  # filled in below: a non-numeric latitude
        # (an empty file never gets this far: analyses create refuses it, test_bad_input)
    ],
)
def test_bad_input_ends_in_inputs_generation_error(
    stack: Stack, model_dir: Path, tmp_path: Path, content: str | None, expected: str
) -> None:
    stack.start_worker(MODEL)
    bad = tmp_path / "location.csv"
    if content is None:
        lines = (model_dir / "location.csv").read_text().splitlines()
        header = lines[0].split(",")
        row = lines[2].split(",")
        row[header.index("Latitude")] = "north"
        lines[2] = ",".join(row)
        bad.write_text("\n".join(lines) + "\n")
    else:
        bad.write_text(content)
    analysis_id = _create(stack, model_dir, chunking={"fixed_lookup_chunks": 2}, locations=bad)
    stack.controller.generate(analysis_id)
    assert stack.wait_status(analysis_id, DONE_INPUTS, TIMEOUT_S) == "INPUTS_GENERATION_ERROR"
    subs = stack.subtasks(analysis_id)
    errors = [s for s in subs if s.status == "ERROR"]
    assert errors, [(s.slug, s.status) for s in subs]
    assert expected.lower() in (errors[0].error_log or "").lower()
    for sub in subs:
        if sub.slug in INPUTS_SPEC.slugs(0)[len(INPUTS_SPEC.before) :]:
            assert sub.status != "COMPLETED", sub.slug
    analysis = stack.analysis(analysis_id)
    assert analysis.input_file_id is None
    assert _file(stack, analysis.input_generation_traceback_file_id).read_text().strip()
