"""The synthetic model, chunked, against oasislmf's own unchunked ``model run``.

Covers, each compared with ``oasislmf model run`` on the model's own config (the oracle):
the synthetic model's portfolio with accounts, GUL and IL, input files from 1 and 4 lookup
chunks and losses from 1, 4 and 10 loss chunks; more lookup chunks than locations; our
own layered portfolio (several portfolios and accounts, location and policy deductibles
and limits, two layers); GUL allocation rules 0, 1 and 2 set under the old
(``ktools_alloc_rule_gul``) and the new (``kernel_alloc_rule_gul``) key names; summarypy's
low-memory streams with an event shuffle; oasislmf's bash pipeline; chunks run in any
order and twice, and the output step run twice. Also, without oasislmf's own run: the
output step refuses to merge while a chunk is missing, the summary streams it merges are
the one-chunk run's byte for byte, samples are made explicit, and the event count comes
from the chosen event set.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.core.model_dir import ModelDir, read_model_dir
from oasis_keda.runtime.synth import write_synthetic_model
from tests import oracle
from tests.integration import oasis_support as sup
from tests.portfolios import layered_portfolio
from worker import losses
from worker.errors import TransientError
from worker.oasis_env import prepare_process
from worker.pipeline import PIPELINE_ENV

pytestmark = pytest.mark.timeout(1800)  # a cold numba cache compiles for minutes


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    prepare_process()
    return write_synthetic_model(tmp_path_factory.mktemp("synth"), locations=30, events=40)


def _oracle(
    model: ModelDir, out: Path, *, location: Path | None = None, accounts: Path | None = None
) -> oracle.OracleRun:
    return oracle.oracle_run(
        model.root,
        location=location or model.root / "location.csv",
        accounts=accounts or model.root / "account.csv",
        settings=sup.model_settings(model),
        run_dir=out / "oracle",
    )


def _inputs(model: ModelDir, out: Path, lookup_chunks: int, **files: Path) -> Path:
    return sup.run_inputs(
        model,
        files.get("location", model.root / "location.csv"),
        files.get("accounts", model.root / "account.csv"),
        sup.model_settings(model),
        out,
        lookup_chunks=lookup_chunks,
    )


@pytest.fixture(scope="module")
def synth_oracle(synth: ModelDir, tmp_path_factory: pytest.TempPathFactory) -> oracle.OracleRun:
    return _oracle(synth, tmp_path_factory.mktemp("oracle"))


@pytest.fixture(scope="module")
def synth_inputs(synth: ModelDir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _inputs(synth, tmp_path_factory.mktemp("inputs"), 4)


@pytest.mark.parametrize("lookup_chunks", [1, 4, 45])
def test_input_files_equal_oasislmf(
    synth: ModelDir, synth_oracle: oracle.OracleRun, lookup_chunks: int, tmp_path: Path
) -> None:
    """45 chunks over 30 locations: some chunks look up nothing, and merge cleanly."""
    inputs = _inputs(synth, tmp_path, lookup_chunks)
    oracle.assert_inputs_equal(inputs, synth_oracle.input_dir)


@pytest.mark.parametrize("loss_chunks", [1, 4, 10])
def test_losses_equal_oasislmf(
    synth: ModelDir,
    synth_inputs: Path,
    synth_oracle: oracle.OracleRun,
    loss_chunks: int,
    tmp_path: Path,
) -> None:
    out = sup.run_losses(synth, synth_inputs, sup.model_settings(synth), loss_chunks, tmp_path)
    for kind in ("gul", "il"):
        for suffix in ("selt", "melt", "qelt", "splt", "mplt", "qplt", "palt", "ept", "psept"):
            assert (out / f"{kind}_S1_{suffix}.csv").is_file()
    oracle.assert_outputs_equal(out, synth_oracle.output_dir, note=f"{loss_chunks} chunks")
    if loss_chunks > 1:
        one = sup.run_losses(synth, synth_inputs, sup.model_settings(synth), 1, tmp_path / "one")
        assert_merged_streams_equal_one_chunk(synth, tmp_path / "run", loss_chunks, one.parent)


def assert_merged_streams_equal_one_chunk(
    model: ModelDir, run_dir: Path, n: int, one_run_dir: Path
) -> None:
    """The work folder the output step reads holds the one-chunk run's streams, byte for byte
    (the output step empties ``work``: merge again to look)."""
    kwargs = losses.step_kwargs(model, run_dir)
    losses.merge_chunk_work(run_dir, n, shuffle_rule=kwargs.get("kernel_event_shuffle"))
    merged = sup.summary_streams(run_dir / "work")
    assert merged == sup.summary_streams(one_run_dir / "run" / "1.work")
    assert merged and all(Path(name).stem == "P1" for name in merged)


def test_layered_portfolio_equals_oasislmf(synth: ModelDir, tmp_path: Path) -> None:
    location, accounts = layered_portfolio(tmp_path / "portfolio")
    want = _oracle(synth, tmp_path, location=location, accounts=accounts)
    inputs = _inputs(synth, tmp_path / "ours", 3, location=location, accounts=accounts)
    oracle.assert_inputs_equal(inputs, want.input_dir)
    out = sup.run_losses(synth, inputs, sup.model_settings(synth), 3, tmp_path / "losses")
    oracle.assert_outputs_equal(out, want.output_dir, note="layered portfolio")


def _variant(tmp_path: Path, options: dict[str, Any], *, locations: int = 20) -> ModelDir:
    """A small synthetic model whose oasislmf.json also sets ``options``."""
    root = tmp_path / "model"
    write_synthetic_model(root, locations=locations, events=30, seed=3)
    config = json.loads((root / "oasislmf.json").read_text(encoding="utf-8"))
    (root / "oasislmf.json").write_text(json.dumps({**config, **options}), encoding="utf-8")
    return read_model_dir(root)


@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("key", ["ktools_alloc_rule_gul", "kernel_alloc_rule_gul"])
def test_allocation_rules_under_both_names_equal_oasislmf(
    rule: int, key: str, tmp_path: Path
) -> None:
    model = _variant(tmp_path, {key: rule})
    sup.settings_file(sup.model_settings(model), tmp_path / "run")
    assert losses.step_kwargs(model, tmp_path / "run")["kernel_alloc_rule_gul"] == rule
    want = _oracle(model, tmp_path)
    inputs = _inputs(model, tmp_path / "ours", 2)
    out = sup.run_losses(model, inputs, sup.model_settings(model), 3, tmp_path / "losses")
    oracle.assert_outputs_equal(out, want.output_dir, note=f"{key}={rule}")


def test_low_memory_streams_and_event_shuffle_equal_oasislmf(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """summarypy -m writes .idx files (lecpy and aalpy seek through them); Fisher-Yates."""
    caplog.set_level(logging.INFO, logger="worker.script")
    model = _variant(tmp_path, {"summarypy_low_memory": True, "kernel_event_shuffle": 2})
    want = _oracle(model, tmp_path)
    inputs = _inputs(model, tmp_path / "ours", 2)
    out = sup.run_losses(model, inputs, sup.model_settings(model), 4, tmp_path / "losses")
    oracle.assert_outputs_equal(out, want.output_dir, note="summarypy -m, shuffle 2")
    assert any(name.endswith(".idx") for name in sup.summary_streams(out.parent / "run" / "1.work"))
    # summarypy -m's index FIFOs are understood: every script ran in this process
    assert "in-process" in caplog.text
    assert "with bash" not in caplog.text


def test_bash_pipeline_equals_oasislmf(
    synth: ModelDir,
    synth_inputs: Path,
    synth_oracle: oracle.OracleRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PIPELINE_ENV, "bash")
    out = sup.run_losses(synth, synth_inputs, sup.model_settings(synth), 2, tmp_path)
    oracle.assert_outputs_equal(out, synth_oracle.output_dir, note="bash pipeline")


def test_chunks_in_any_order_and_twice(
    synth: ModelDir, synth_inputs: Path, synth_oracle: oracle.OracleRun, tmp_path: Path
) -> None:
    settings = sup.model_settings(synth)
    out = sup.run_losses(synth, synth_inputs, settings, 4, tmp_path, order=[3, 1, 4, 2, 3, 1])
    oracle.assert_outputs_equal(out, synth_oracle.output_dir, note="chunks out of order")
    # the output step again, and a chunk again after it: still the same outputs
    run_dir = tmp_path / "run"
    losses.run_loss_chunk(model=synth, run_dir=run_dir, chunk_index=2, num_chunks=4)
    losses.generate_losses_output(
        model=synth, run_dir=run_dir, num_chunks=4, output_dir=tmp_path / "again"
    )
    oracle.assert_outputs_equal(tmp_path / "again", synth_oracle.output_dir, note="again")


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


def test_samples_made_explicit(synth: ModelDir) -> None:
    settings: dict[str, Any] = sup.model_settings(synth)
    del settings["number_of_samples"]
    stored = losses.run_settings(synth, settings)
    assert stored["number_of_samples"] == 8  # the model's model_default_samples


def test_event_count(synth: ModelDir) -> None:
    assert synth.events_for({}) == 40
    assert synth.events_for({"model_settings": {"event_set": "p"}}) == 40
    assert synth.events_for({"model_settings": {"event_set": "nope"}}) is None


@pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository")
def test_piwind_event_count() -> None:
    assert sup.piwind().events_for(sup.piwind_settings()) == 1447


def test_rerun_keys_chunk_replaces_its_output(synth: ModelDir, tmp_path: Path) -> None:
    first = sup.run_keys(synth, synth.root / "location.csv", 3, tmp_path / "a")
    chunk_dir = tmp_path / "a" / "chunks"
    before = sup.tree(chunk_dir)
    for path in chunk_dir.rglob("*.pkl"):
        path.write_text("half a file")
    again = sup.run_keys(synth, synth.root / "location.csv", 3, tmp_path / "a")
    assert again == first
    assert sup.tree(chunk_dir) == before
    assert not [p for p in chunk_dir.iterdir() if p.name.startswith(".")]
    shutil.rmtree(tmp_path / "a")
