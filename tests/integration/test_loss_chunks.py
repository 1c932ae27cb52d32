"""Chunked loss runs (worker.losses) on real oasislmf runs.

Covers: 1, 4 and 10 loss chunks give ORD outputs equal to the one-chunk run (every file,
byte-identical or identical after sorting rows, no tolerance), because the output step is
fed the one-chunk run's summary streams byte for byte (also with summarypy's .idx files and
oasislmf's other event shuffles); the in-process pipeline gives the same
outputs as oasislmf's own bash pipeline; chunks may run in any order and a chunk may run
twice; the output step refuses to merge while a chunk is missing, and may run twice;
``event_count`` reads the chosen event set. The same on PiWind when /work/shared/piwind is
present (10 rows here, 12,599 rows under ``-m slow``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.model_dir import ModelDir, read_model_dir
from tests.integration import oasis_support as sup
from worker import losses
from worker.errors import TransientError
from worker.oasis_env import prepare_process
from worker.pipeline import PIPELINE_ENV
from worker.synth import write_synthetic_model

pytestmark = pytest.mark.timeout(900)  # a cold numba cache compiles for minutes


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    prepare_process()
    return write_synthetic_model(tmp_path_factory.mktemp("synth"), locations=30, events=40)


@pytest.fixture(scope="module")
def synth_inputs(synth: ModelDir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sup.run_inputs(
        synth,
        synth.root / "location.csv",
        synth.root / "account.csv",
        sup.model_settings(synth),
        tmp_path_factory.mktemp("inputs"),
    )


@pytest.fixture(scope="module")
def one_chunk(
    synth: ModelDir, synth_inputs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return sup.run_losses(
        synth, synth_inputs, sup.model_settings(synth), 1, tmp_path_factory.mktemp("one")
    )


@pytest.fixture
def bash_pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(PIPELINE_ENV, "bash")
    yield


def test_one_chunk_writes_ord_outputs(one_chunk: Path) -> None:
    names = {p.name for p in one_chunk.iterdir()}
    for kind in ("gul", "il"):
        for suffix in ("selt", "melt", "qelt", "splt", "mplt", "qplt", "palt", "ept", "psept"):
            assert f"{kind}_S1_{suffix}.csv" in names
    assert len((one_chunk / "gul_S1_selt.csv").read_text().splitlines()) > 1


@pytest.mark.parametrize("n", [4, 10])
def test_chunked_losses_equal_one_chunk(
    synth: ModelDir, synth_inputs: Path, one_chunk: Path, n: int, tmp_path: Path
) -> None:
    out = sup.run_losses(synth, synth_inputs, sup.model_settings(synth), n, tmp_path)
    sup.assert_same_outputs(out, one_chunk)
    assert_merged_streams_equal_one_chunk(synth, tmp_path / "run", n, one_chunk.parent / "run")


def assert_merged_streams_equal_one_chunk(
    model: ModelDir, run_dir: Path, n: int, one_run_dir: Path
) -> None:
    """The work folder the output step reads holds the one-chunk run's streams, byte for byte
    (the output step empties ``work``: merge again to look)."""
    kwargs = losses.step_kwargs(model, run_dir)
    losses.merge_chunk_work(run_dir, n, shuffle_rule=kwargs.get("kernel_event_shuffle"))
    merged = sup.summary_streams(run_dir / "work")
    assert merged == sup.summary_streams(one_run_dir / "1.work")
    assert merged and all(Path(name).stem == "P1" for name in merged)


@pytest.mark.parametrize(
    "options",
    [
        # summarypy -m writes .idx files (lecpy and aalpy then seek through them), and the
        # Fisher-Yates event shuffle
        {"summarypy_low_memory": True, "kernel_event_shuffle": 2},
        pytest.param({"kernel_event_shuffle": 0}, marks=pytest.mark.slow),  # no shuffle
        pytest.param({"kernel_event_shuffle": 3}, marks=pytest.mark.slow),  # std::shuffle
    ],
)
def test_chunked_losses_equal_one_chunk_other_kernel_options(
    options: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.script")
    prepare_process()
    root = tmp_path / "model"
    write_synthetic_model(root, locations=30, events=40)
    config = json.loads((root / "oasislmf.json").read_text(encoding="utf-8"))
    (root / "oasislmf.json").write_text(json.dumps({**config, **options}), encoding="utf-8")
    model = read_model_dir(root)
    settings = sup.model_settings(model)
    inputs = sup.run_inputs(model, root / "location.csv", root / "account.csv", settings, tmp_path)
    one = sup.run_losses(model, inputs, settings, 1, tmp_path / "one")
    if options.get("summarypy_low_memory"):
        assert any(
            name.endswith(".idx") for name in sup.summary_streams(one.parent / "run" / "1.work")
        )
    four = sup.run_losses(model, inputs, settings, 4, tmp_path / "four")
    sup.assert_same_outputs(four, one)
    assert_merged_streams_equal_one_chunk(model, four.parent / "run", 4, one.parent / "run")
    # summarypy -m's index FIFOs are understood: every script ran in this process
    assert "in-process" in caplog.text
    assert "with bash" not in caplog.text


def test_in_process_pipeline_equals_oasislmf_bash(
    synth: ModelDir, synth_inputs: Path, one_chunk: Path, tmp_path: Path, bash_pipeline: None
) -> None:
    out = sup.run_losses(synth, synth_inputs, sup.model_settings(synth), 1, tmp_path)
    sup.assert_same_outputs(out, one_chunk)


def test_chunks_in_any_order_and_twice(
    synth: ModelDir, synth_inputs: Path, one_chunk: Path, tmp_path: Path
) -> None:
    out = sup.run_losses(
        synth, synth_inputs, sup.model_settings(synth), 4, tmp_path, order=[3, 1, 4, 2, 3, 1]
    )
    sup.assert_same_outputs(out, one_chunk)
    # the output step again, and a chunk again after it: still the same outputs
    run_dir = tmp_path / "run"
    losses.run_loss_chunk(model=synth, run_dir=run_dir, chunk_index=2, num_chunks=4)
    losses.generate_losses_output(
        model=synth, run_dir=run_dir, num_chunks=4, output_dir=tmp_path / "again"
    )
    sup.assert_same_outputs(tmp_path / "again", one_chunk)


def test_output_step_refuses_missing_chunk(
    synth: ModelDir, synth_inputs: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    losses.prepare_losses_dir(
        model=synth,
        input_dir=synth_inputs,
        analysis_settings=sup.model_settings(synth),
        run_dir=run_dir,
    )
    losses.run_loss_chunk(model=synth, run_dir=run_dir, chunk_index=1, num_chunks=2)
    with pytest.raises(TransientError, match=r"chunks \[2\] of 2"):
        losses.generate_losses_output(
            model=synth, run_dir=run_dir, num_chunks=2, output_dir=tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


def test_samples_made_explicit(synth: ModelDir, synth_inputs: Path, tmp_path: Path) -> None:
    settings: dict[str, Any] = sup.model_settings(synth)
    del settings["number_of_samples"]
    stored = losses.run_settings(synth, settings)
    assert stored["number_of_samples"] == 8  # the model's model_default_samples


def test_event_count(synth: ModelDir) -> None:
    assert losses.event_count(synth, {}) == 40
    assert losses.event_count(synth, {"model_settings": {"event_set": "p"}}) == 40
    assert losses.event_count(synth, {"model_settings": {"event_set": "nope"}}) is None


piwind_only = pytest.mark.skipif(not sup.PIWIND.exists(), reason="no /work/shared/piwind")


def _piwind_runs(location_file: Path, counts: list[int], tmp_path: Path) -> None:
    prepare_process()
    model = sup.piwind()
    settings = sup.piwind_settings()
    inputs = sup.run_inputs(model, location_file, sup.PIWIND_ACC, settings, tmp_path / "in")
    one = sup.run_losses(model, inputs, settings, 1, tmp_path / "one")
    assert len((one / "gul_S1_selt.csv").read_text().splitlines()) > 1
    for n in counts:
        out = sup.run_losses(model, inputs, settings, n, tmp_path / f"n{n}")
        sup.assert_same_outputs(out, one)
        assert_merged_streams_equal_one_chunk(model, out.parent / "run", n, one.parent / "run")


@piwind_only
def test_piwind_event_count() -> None:
    assert losses.event_count(sup.piwind(), sup.piwind_settings()) == 1447


@piwind_only
def test_piwind_10_rows_chunked_losses_equal_one_chunk(tmp_path: Path) -> None:
    _piwind_runs(sup.PIWIND_10, [4, 10], tmp_path)


@piwind_only
@pytest.mark.slow
def test_piwind_full_chunked_losses_equal_one_chunk(tmp_path: Path) -> None:
    _piwind_runs(sup.PIWIND_FULL, [4, 10], tmp_path)
