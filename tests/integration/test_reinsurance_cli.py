"""Reinsurance through ``oasis-keda analyses`` with real controller and PiWind worker.

Covers: ``analyses create --ri-info FILE --ri-scope FILE`` with PiWind's 10 rows and
accounts, generate and run (3 lookup, 3 loss chunks): the outputs hold GUL, IL and RI
losses equal to oasislmf's own unchunked run. With the reinsurance scope file missing, the
run is not refused: RI is dropped with a warning naming the missing file (printed by
``run`` and ``show``, in the run log), and GUL and IL run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from oasis_keda.cli import cli
from oasis_keda.core.registry import Registry
from tests import oracle
from tests.integration import oasis_support as sup
from tests.stack_support import Stack, running_stack

pytestmark = [
    pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository"),
    pytest.mark.timeout(1800),
]

RI_DROPPED = "RI losses (ri_output) are dropped: the portfolio has no reinsurance scope file"


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path / "stack") as stack:
        Registry(stack.controller.client).register("piwind", model_dir=str(sup.PIWIND))
        Registry(stack.controller.client).set_chunking(
            "piwind",
            {
                "lookup_strategy": "FIXED_CHUNKS",
                "fixed_lookup_chunks": 3,
                "loss_strategy": "FIXED_CHUNKS",
                "fixed_analysis_chunks": 3,
            },
        )
        stack.start_controller()
        stack.start_worker("piwind")
        yield stack


def invoke(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(cli, ["analyses", *args], env=stack.env, catch_exceptions=False)


def _create(stack: Stack, settings: Path, *ri: str) -> str:
    result = invoke(
        stack,
        *("create", "ri", "--model", "piwind", "--locations", str(sup.PIWIND_10)),
        *("--accounts", str(sup.PIWIND_ACC), "--settings", str(settings), *ri),
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _generate_and_run(stack: Stack, analysis_id: str) -> Result:
    result = invoke(stack, "generate", analysis_id, "--wait", "--timeout", "900")
    assert result.exit_code == 0, result.output + stack.log("worker")[-3000:]
    result = invoke(stack, "run", analysis_id, "--wait", "--timeout", "900")
    assert result.exit_code == 0, result.output + stack.log("worker")[-3000:]
    return result


def test_cli_reinsurance_equals_oasislmf(stack: Stack, tmp_path: Path) -> None:
    settings = sup.settings_file(sup.piwind_settings(ri=True), tmp_path / "settings")
    analysis_id = _create(
        stack,
        settings,
        "--ri-info",
        str(sup.PIWIND_RI_INFO),
        "--ri-scope",
        str(sup.PIWIND_RI_SCOPE),
    )
    result = _generate_and_run(stack, analysis_id)
    assert "warning" not in result.output, result.output
    out = tmp_path / "out"
    assert invoke(stack, "outputs", analysis_id, "--out", str(out)).exit_code == 0
    names = {p.name for p in out.rglob("*.csv")}
    assert {"gul_S1_melt.csv", "il_S1_melt.csv", "ri_S1_melt.csv"} <= names, sorted(names)
    want = oracle.oracle_run(
        sup.PIWIND,
        location=sup.PIWIND_10,
        accounts=sup.PIWIND_ACC,
        settings=sup.piwind_settings(ri=True),
        run_dir=tmp_path / "oracle",
        ri_info=sup.PIWIND_RI_INFO,
        ri_scope=sup.PIWIND_RI_SCOPE,
    )
    [folder] = {p.parent for p in out.rglob("gul_S1_melt.csv")}
    oracle.assert_outputs_equal(folder, want.output_dir, note="CLI, RI, 3 loss chunks")


def test_cli_reinsurance_without_scope_is_dropped_with_a_warning(
    stack: Stack, tmp_path: Path
) -> None:
    settings = sup.settings_file(sup.piwind_settings(ri=True), tmp_path / "settings")
    analysis_id = _create(stack, settings, "--ri-info", str(sup.PIWIND_RI_INFO))
    result = _generate_and_run(stack, analysis_id)
    assert RI_DROPPED in result.output, result.output
    shown = invoke(stack, "show", analysis_id, "--json")
    assert json.loads(shown.stdout)["warnings"] == [RI_DROPPED]
    out = tmp_path / "out"
    assert invoke(stack, "outputs", analysis_id, "--out", str(out)).exit_code == 0
    names = {p.name for p in out.rglob("*.csv")}
    assert {"gul_S1_melt.csv", "il_S1_melt.csv"} <= names, sorted(names)
    assert not any(n.startswith("ri_") for n in names), sorted(names)
    record = stack.analysis(int(analysis_id))
    assert record.run_log_file_id is not None
    [run_log] = (tmp_path / "stack").rglob("run_log.txt")
    assert RI_DROPPED in run_log.read_text(encoding="utf-8")
