"""PiWind, chunked, against oasislmf's own unchunked ``model run`` on PiWind's own config.

Covers: PiWind's 10-row portfolio with accounts, GUL and IL: the input files written from
1 and 3 lookup chunks equal oasislmf's (binary files byte for byte, keys and CSV tables
row for row), and the losses of 1, 3 and 7 loss chunks equal its outputs; PiWind's config
asks for GUL allocation rule 1 under the old key name, and the run uses it. Under ``-m
slow``: the whole portfolio (12,598 locations with accounts) at 8 lookup and 10 loss chunks.
Reinsurance is left out here (PiWind's RI files are not used).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from tests import oracle
from tests.integration import oasis_support as sup
from worker import losses
from worker.oasis_env import prepare_process

pytestmark = [
    pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository"),
    pytest.mark.timeout(1800),  # a cold numba cache compiles for minutes
]


@pytest.fixture(scope="module")
def oracle_10(tmp_path_factory: pytest.TempPathFactory) -> oracle.OracleRun:
    prepare_process()
    return oracle.oracle_run(
        sup.PIWIND,
        location=sup.PIWIND_10,
        accounts=sup.PIWIND_ACC,
        settings=sup.piwind_settings(),
        run_dir=tmp_path_factory.mktemp("oracle") / "run",
    )


@pytest.fixture(scope="module")
def inputs_10(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    prepare_process()
    model = sup.piwind()
    return {
        n: sup.run_inputs(
            model,
            sup.PIWIND_10,
            sup.PIWIND_ACC,
            sup.piwind_settings(),
            tmp_path_factory.mktemp(f"inputs{n}"),
            lookup_chunks=n,
        )
        for n in (1, 3)
    }


@pytest.mark.parametrize("lookup_chunks", [1, 3])
def test_piwind_10_input_files_equal_oasislmf(
    inputs_10: dict[int, Path], oracle_10: oracle.OracleRun, lookup_chunks: int
) -> None:
    oracle.assert_inputs_equal(inputs_10[lookup_chunks], oracle_10.input_dir)


@pytest.mark.parametrize("loss_chunks", [1, 3, 7])
def test_piwind_10_losses_equal_oasislmf(
    inputs_10: dict[int, Path], oracle_10: oracle.OracleRun, loss_chunks: int, tmp_path: Path
) -> None:
    out = sup.run_losses(sup.piwind(), inputs_10[3], sup.piwind_settings(), loss_chunks, tmp_path)
    names = {p.name for p in out.iterdir()}
    assert {"gul_S1_melt.csv", "il_S1_melt.csv"} <= names
    # chunk boundaries change float32 summation orders: equal within 1e-6 relative
    oracle.assert_outputs_equal(out, oracle_10.output_dir, note=f"{loss_chunks} loss chunks")


def test_piwind_runs_its_own_allocation_rule(tmp_path: Path) -> None:
    """PiWind's config says ``ktools_alloc_rule_gul: 1``; oasislmf 2.5.8 renamed the key."""
    model = sup.piwind()
    run_dir = tmp_path / "run"
    sup.settings_file(sup.piwind_settings(), run_dir)
    kwargs = losses.step_kwargs(model, run_dir)
    assert kwargs["kernel_alloc_rule_gul"] == 1
    assert kwargs["intermediary_csv"] is True


def _same_partition_order(ours: Path, theirs: Path) -> bool:
    """oasislmf writes its lookup partitions in the order its processes finish, so two of
    its own runs can list keys in another order; ours is the order they have when they
    finish in turn. Same first key, same order."""
    first = [pd.read_parquet(d / "keys.parquet")["LocID"].iloc[0] for d in (ours, theirs)]
    return bool(first[0] == first[1])


@pytest.mark.slow
def test_piwind_full_portfolio_equals_oasislmf(tmp_path: Path) -> None:
    prepare_process()
    model = sup.piwind()
    settings = sup.piwind_settings()
    inputs = sup.run_inputs(
        model, sup.PIWIND_FULL, sup.PIWIND_ACC, settings, tmp_path / "in", lookup_chunks=8
    )
    for attempt in range(3):
        want = oracle.oracle_run(
            sup.PIWIND,
            location=sup.PIWIND_FULL,
            accounts=sup.PIWIND_ACC,
            settings=settings,
            run_dir=tmp_path / f"oracle{attempt}",
            reuse=False,
        )
        if _same_partition_order(inputs, want.input_dir):
            break
    else:
        pytest.fail("oasislmf wrote its lookup partitions out of turn three times")
    oracle.assert_inputs_equal(inputs, want.input_dir)
    out = sup.run_losses(model, inputs, settings, 10, tmp_path / "losses")
    oracle.assert_outputs_equal(out, want.output_dir, note="whole PiWind, 10 loss chunks")
