"""Reinsurance, chunked, against oasislmf's own unchunked ``model run``.

Covers: PiWind's 10-row portfolio with its accounts, reinsurance info and scope files,
GUL+IL+RI: the input files (the ``RI_<n>`` folders and ``ri_layers.json`` included) written
after 3 lookup chunks equal oasislmf's, and the losses of 1, 3 and 7 loss chunks equal its
outputs, ``ri_*`` outputs included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import oracle
from tests.integration import oasis_support as sup
from worker.oasis_env import prepare_process

pytestmark = [
    pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository"),
    pytest.mark.timeout(1800),
]

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


def test_piwind_ri_input_files_equal_oasislmf(inputs_ri: Path, oracle_ri: oracle.OracleRun) -> None:
    assert (inputs_ri / "ri_layers.json").is_file()
    assert any(p.name.startswith("RI_") and p.is_dir() for p in inputs_ri.iterdir())
    oracle.assert_inputs_equal(inputs_ri, oracle_ri.input_dir)


@pytest.mark.parametrize("loss_chunks", [1, 3, 7])
def test_piwind_ri_losses_equal_oasislmf(
    inputs_ri: Path, oracle_ri: oracle.OracleRun, loss_chunks: int, tmp_path: Path
) -> None:
    settings = sup.piwind_settings(ri=True)
    out = sup.run_losses(sup.piwind(), inputs_ri, settings, loss_chunks, tmp_path)
    names = {p.name for p in out.iterdir()}
    assert {"gul_S1_melt.csv", "il_S1_melt.csv", "ri_S1_melt.csv"} <= names, sorted(names)
    oracle.assert_outputs_equal(out, oracle_ri.output_dir, note=f"RI, {loss_chunks} loss chunks")
