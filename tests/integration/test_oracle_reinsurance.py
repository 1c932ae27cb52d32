"""Reinsurance, chunked, against oasislmf's own unchunked ``model run``.

Covers: PiWind's 10-row portfolio with its accounts, reinsurance info and scope files,
GUL+IL+RI: the input files (the ``RI_<n>`` folders and ``ri_layers.json`` included) written
after 3 lookup chunks equal oasislmf's, and the losses of 1, 3 and 7 loss chunks equal its
outputs, ``ri_*`` outputs included. A programme of our own on the synthetic model: a quota
share, a location-level surplus share and a catastrophe excess of loss at three inuring
priorities over several portfolios and accounts, 3 lookup and 4 loss chunks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from oasis_keda.runtime.synth import write_synthetic_model
from tests import oracle
from tests.integration import oasis_support as sup
from tests.portfolios import layered_portfolio, reinsurance_programme
from worker.oasis_env import prepare_process

pytestmark = [
    pytest.mark.timeout(1800),
]
needs_piwind = pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository")

RI_FILES = (sup.PIWIND_RI_INFO, sup.PIWIND_RI_SCOPE)


@pytest.fixture(scope="module")
def oracle_ri(tmp_path_factory: pytest.TempPathFactory) -> oracle.OracleRun:
    prepare_process()
    return oracle.oracle_run(
        sup.PIWIND,
        location=sup.PIWIND_10,
        accounts=sup.PIWIND_ACC,
        settings=sup.piwind_settings(ri=True),
        run_dir=tmp_path_factory.mktemp("oracle-ri") / "run",
        ri_info=sup.PIWIND_RI_INFO,
        ri_scope=sup.PIWIND_RI_SCOPE,
    )


@pytest.fixture(scope="module")
def inputs_ri(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prepare_process()
    return sup.run_inputs(
        sup.piwind(),
        sup.PIWIND_10,
        sup.PIWIND_ACC,
        sup.piwind_settings(ri=True),
        tmp_path_factory.mktemp("inputs-ri"),
        lookup_chunks=3,
        ri_files=RI_FILES,
    )


@needs_piwind
def test_piwind_ri_input_files_equal_oasislmf(inputs_ri: Path, oracle_ri: oracle.OracleRun) -> None:
    assert (inputs_ri / "ri_layers.json").is_file()
    assert any(p.name.startswith("RI_") and p.is_dir() for p in inputs_ri.iterdir())
    oracle.assert_inputs_equal(inputs_ri, oracle_ri.input_dir)


@needs_piwind
@pytest.mark.parametrize("loss_chunks", [1, 3, 7])
def test_piwind_ri_losses_equal_oasislmf(
    inputs_ri: Path, oracle_ri: oracle.OracleRun, loss_chunks: int, tmp_path: Path
) -> None:
    settings = sup.piwind_settings(ri=True)
    out = sup.run_losses(sup.piwind(), inputs_ri, settings, loss_chunks, tmp_path)
    names = {p.name for p in out.iterdir()}
    assert {"gul_S1_melt.csv", "il_S1_melt.csv", "ri_S1_melt.csv"} <= names, sorted(names)
    oracle.assert_outputs_equal(out, oracle_ri.output_dir, note=f"RI, {loss_chunks} loss chunks")


def test_own_programme_of_three_inuring_priorities_equals_oasislmf(tmp_path: Path) -> None:
    prepare_process()
    model = write_synthetic_model(tmp_path / "synth", locations=30, events=40)
    location, accounts = layered_portfolio(tmp_path / "portfolio", portfolios=3, accounts=3)
    ri_info, ri_scope = reinsurance_programme(tmp_path / "portfolio", location)
    settings = sup.model_settings(model)
    settings["ri_output"] = True
    settings["ri_summaries"] = settings["il_summaries"]
    want = oracle.oracle_run(
        model.root,
        location=location,
        accounts=accounts,
        settings=settings,
        run_dir=tmp_path / "oracle",
        ri_info=ri_info,
        ri_scope=ri_scope,
    )
    assert len([p for p in want.input_dir.iterdir() if p.name.startswith("RI_")]) == 3
    inputs = sup.run_inputs(
        model,
        location,
        accounts,
        settings,
        tmp_path / "ours",
        lookup_chunks=3,
        ri_files=(ri_info, ri_scope),
    )
    oracle.assert_inputs_equal(inputs, want.input_dir)
    out = sup.run_losses(model, inputs, settings, 4, tmp_path / "losses")
    oracle.assert_outputs_equal(out, want.output_dir, note="own RI programme, 4 loss chunks")
    # the programme cedes something, not everything: net of reinsurance is below gross
    il, ri = (pd.read_csv(out / f"{kind}_S1_melt.csv")["MeanLoss"].sum() for kind in ("il", "ri"))
    assert 0 < ri < il, (ri, il)
