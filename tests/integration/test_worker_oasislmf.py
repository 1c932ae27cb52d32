"""Whole analyses on oasislmf through the controller and real worker processes, on the
built-in synthetic model.

Covers: chunked lookup (3, 8 chunks) gives the same keys and input files as one chunk; chunked losses
(1, 4, 10 chunks) give the same ORD outputs as one chunk (byte-identical, or identical after
sorting rows); the sub-task records of a real run match the plan; a worker SIGKILLed after a
loss chunk wrote its output but before it was acknowledged: the chunk runs again elsewhere
and the outputs equal the fault-free run; bad input (non-numeric coordinates, an empty
location file) ends in INPUTS_GENERATION_ERROR with the message in a sub-task's error log and
nothing reported complete.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from oasis_keda.registry import Registry
from oasis_keda.store import StoredFile
from tests.stack_support import Stack, running_stack, wait_for
from worker.stages import INPUTS_SPEC, LOSSES_SPEC
from worker.synth import write_synthetic_model

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


def _rows(path: Path) -> list[bytes]:
    lines = path.read_bytes().splitlines()
    return lines[:1] + sorted(lines[1:])


#: Files that name the (per-analysis) upload path of the location file.
PATH_BEARING = {"exposure_info.json"}


def assert_same_outputs(a: Path, b: Path) -> None:
    files_a = sorted(
        p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name not in PATH_BEARING
    )
    files_b = sorted(
        p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name not in PATH_BEARING
    )
    assert files_a == files_b
    assert files_a, "no output files"
    for rel in files_a:
        if (a / rel).read_bytes() != (b / rel).read_bytes():
            assert _rows(a / rel) == _rows(b / rel), f"{rel} differs"


@pytest.mark.parametrize("chunks", [3, pytest.param(8, marks=pytest.mark.slow)])
def test_chunked_lookup_equals_one_chunk(stack: Stack, model_dir: Path, chunks: int) -> None:
    stack.start_worker(MODEL)
    reference = _create(stack, model_dir, chunking={})
    keys_one = _generate(stack, reference)
    subs = stack.subtasks(reference)
    assert [s.slug for s in subs] == INPUTS_SPEC.slugs(1)
    assert all(s.status == "COMPLETED" and s.output_log for s in subs)
    assert stack.analysis(reference).lookup_chunks == 1
    chunked = _create(stack, model_dir, chunking={"fixed_lookup_chunks": chunks})
    assert _rows(_generate(stack, chunked)) == _rows(keys_one)
    assert [s.slug for s in stack.subtasks(chunked)] == INPUTS_SPEC.slugs(chunks)
    inputs_a = _file(stack, stack.analysis(chunked).input_file_id).parent / "inputs"
    inputs_b = _file(stack, stack.analysis(reference).input_file_id).parent / "inputs"
    assert_same_outputs(inputs_a, inputs_b)


def test_chunked_losses_equal_one_chunk(stack: Stack, model_dir: Path) -> None:
    stack.start_worker(MODEL)
    reference = _create(stack, model_dir, chunking={})
    _generate(stack, reference)
    outputs_one = _run(stack, reference)
    subs = stack.subtasks(reference)
    assert [s.slug for s in subs] == LOSSES_SPEC.slugs(1)
    assert all(s.status == "COMPLETED" and s.output_log for s in subs)
    analysis = stack.analysis(reference)
    assert analysis.num_events_total == 40
    assert analysis.num_events_complete == 40

    chunked = _create(stack, model_dir, chunking={"fixed_analysis_chunks": 4})
    _generate(stack, chunked)
    assert_same_outputs(_run(stack, chunked), outputs_one)
    subs = stack.subtasks(chunked)
    assert [s.slug for s in subs] == LOSSES_SPEC.slugs(4)
    times = [(s.start_time, s.end_time) for s in subs]
    assert all(a is not None and b is not None and a <= b for a, b in times)


@pytest.mark.slow
def test_more_chunks_equal_one_chunk(stack: Stack, model_dir: Path) -> None:
    stack.start_worker(MODEL)
    reference = _create(stack, model_dir, chunking={})
    keys_one = _generate(stack, reference)
    outputs_one = _run(stack, reference)
    many = _create(stack, model_dir, chunking={"fixed_analysis_chunks": 10})
    assert _rows(_generate(stack, many)) == _rows(keys_one)
    assert_same_outputs(_run(stack, many), outputs_one)


@pytest.mark.slow  # the trivial-stage version runs in the default suite (test_worker_faults)
def test_worker_killed_after_a_loss_chunk_outputs_equal_fault_free(
    stack: Stack, model_dir: Path
) -> None:
    worker = stack.start_worker(MODEL)
    reference = _create(stack, model_dir, chunking={"fixed_analysis_chunks": 3})
    _generate(stack, reference)
    outputs_ref = _run(stack, reference)

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
    assert_same_outputs(outputs, outputs_ref)
    rerun = next(s for s in stack.subtasks(faulty) if s.slug == slug)
    assert f".{worker2.pid}@" in (rerun.worker or "")
    assert "restored task" in stack.log("controller")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "Latitude"),  # filled in below: a non-numeric latitude
        pytest.param("", "empty", marks=pytest.mark.slow),
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
        if sub.slug in ("collect-keys", "write-input-files", "cleanup-input-generation"):
            assert sub.status != "COMPLETED", sub.slug
    analysis = stack.analysis(analysis_id)
    assert analysis.input_file_id is None
    assert _file(stack, analysis.input_generation_traceback_file_id).read_text().strip()


from tests.shared_data import PIWIND


def _piwind_settings(tmp_path: Path) -> Path:
    import json

    settings = json.loads((PIWIND / "analysis_settings.json").read_text())
    settings["ri_output"] = False  # no reinsurance files in these portfolios
    path = tmp_path / "analysis_settings.json"
    path.write_text(json.dumps(settings))
    return path


@pytest.mark.slow
@pytest.mark.skipif(not PIWIND.is_dir(), reason="../shared/piwind is not present")
@pytest.mark.parametrize("locations", ["SourceLocOEDPiWind10.csv", "SourceLocOEDPiWind.csv"])
def test_piwind_chunked_lookup_equals_one_chunk(
    redis_url: str, tmp_path: Path, locations: str
) -> None:
    inputs = PIWIND / "tests" / "inputs"
    settings_file = _piwind_settings(tmp_path)
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register("piwind", model_dir=str(PIWIND))
        stack.start_controller()
        stack.start_worker("piwind")
        keys = []
        for chunks in (1, 3):
            analysis_id = stack.controller.create_analysis(
                "piwind",
                model_id="piwind",
                location_file=inputs / locations,
                accounts_file=inputs / "SourceAccOEDPiWind.csv",
                settings_file=settings_file,
                chunking={"fixed_lookup_chunks": chunks},
            )
            keys.append(_rows(_generate(stack, analysis_id)))
        assert keys[0] == keys[1]
        assert len(keys[0]) > 1


@pytest.mark.slow
@pytest.mark.skipif(not PIWIND.is_dir(), reason="../shared/piwind is not present")
def test_piwind_chunked_losses_equal_one_chunk(redis_url: str, tmp_path: Path) -> None:
    inputs = PIWIND / "tests" / "inputs"
    settings_file = _piwind_settings(tmp_path)
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register("piwind", model_dir=str(PIWIND))
        stack.start_controller()
        stack.start_worker("piwind")
        outputs = []
        for chunks in (1, 4):
            analysis_id = stack.controller.create_analysis(
                "piwind",
                model_id="piwind",
                location_file=inputs / "SourceLocOEDPiWind10.csv",
                accounts_file=inputs / "SourceAccOEDPiWind.csv",
                settings_file=settings_file,
                chunking={"fixed_analysis_chunks": chunks},
            )
            _generate(stack, analysis_id)
            outputs.append(_run(stack, analysis_id))
        assert_same_outputs(outputs[1], outputs[0])
