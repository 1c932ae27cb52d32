"""The official ``oasislmf api run``, as a real subprocess, against our API on PiWind.

A real API server (uvicorn, free port, in this process), the task controller and one
PiWind worker as ``oasis-keda`` subprocesses, a real Redis and a records database. PiWind
is registered with ``oasis-keda models register`` and chunked FIXED (3 lookup, 4 loss
chunks) over HTTP; then oasislmf's own CLI, unmodified and without a login file, tries its
default login and a client_id login, asks for credentials (typed on its standard input:
the server's, not its defaults), creates the portfolio and the analysis on our server,
uploads PiWind's 10-row locations, its accounts, its reinsurance info and scope files and
the analysis settings (PiWind's, GUL+IL+RI, 10 samples), generates inputs, runs the losses
and downloads the outputs archive. Covers: the CLI exits 0; the analysis went through 3
lookup chunks and 4 loss chunks, every sub-task completed; the archive holds GUL, IL and
RI outputs, equal to oasislmf's own unchunked ``oasislmf model run`` of the same inputs
(``tests/oracle.py``; losses within its float32 summation tolerance).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC
from tests.integration.api_support import PASSWORD, USER
from tests.integration.piwind_api import (
    ACCOUNTS,
    LOCATIONS,
    LOG_TAIL_CHARS,
    RI_INFO,
    RI_SCOPE,
    ApiStack,
    extract,
    piwind_api_stack,
    run_cli,
)
from tests.oracle import assert_outputs_equal, oracle_run
from tests.shared_data import PIWIND

pytestmark = [
    pytest.mark.skipif(not PIWIND.is_dir(), reason="../shared/piwind is not present"),
    pytest.mark.timeout(1800),  # a cold numba cache compiles the pipeline tools for minutes
]

LOOKUP_CHUNKS = 3
LOSS_CHUNKS = 4
CHUNKING = {
    "lookup_strategy": "FIXED_CHUNKS",
    "fixed_lookup_chunks": LOOKUP_CHUNKS,
    "loss_strategy": "FIXED_CHUNKS",
    "fixed_analysis_chunks": LOSS_CHUNKS,
}
CLI_TIMEOUT_S = 1200.0
ORACLE_TIMEOUT_S = 900.0


@pytest.fixture
def api_stack(redis_url: str, tmp_path: Path) -> Iterator[ApiStack]:
    with piwind_api_stack(redis_url, tmp_path) as api:
        yield api


def _analysis_settings() -> dict[str, Any]:
    """PiWind's analysis settings (GUL, IL and RI), 10 samples."""
    settings: dict[str, Any] = json.loads((PIWIND / "analysis_settings.json").read_text("utf-8"))
    settings["number_of_samples"] = 10
    return settings


def test_official_cli_run_equals_oasislmfs_own_run(api_stack: ApiStack, tmp_path: Path) -> None:
    server, stack = api_stack.server, api_stack.stack
    client = server.client()
    try:
        [model] = client.models.search({"model_id": "PiWind"}).json()
        assert model["supplier_id"] == "OasisLMF", model
        client.models.chunking_configuration.post(model["id"], CHUNKING)
    finally:
        client.api.close()

    settings = _analysis_settings()
    settings_file = tmp_path / "analysis_settings.json"
    settings_file.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    out_dir, cwd = tmp_path / "cli-out", tmp_path / "cli-cwd"
    out_dir.mkdir()
    cwd.mkdir()
    command = [
        str(Path(sys.executable).parent / "oasislmf"),
        *("api", "run", "--server-url", server.url),
        *("--model-id", str(model["id"]), "-x", str(LOCATIONS), "-y", str(ACCOUNTS)),
        *("-i", str(RI_INFO), "-s", str(RI_SCOPE)),
        *("-a", str(settings_file), "-o", str(out_dir)),
    ]
    # no login file: the CLI tries its default user and a client_id login, then asks (auth
    # type 1: simple), and the server's credentials are typed on standard input. `api run`
    # opens three connections (the command's, its inputs step's and its losses step's), and
    # asks at each.
    stdin = f"1\n{USER}\n{PASSWORD}\n" * 3
    code, output = run_cli(command, cwd, stdin=stdin, timeout=CLI_TIMEOUT_S)

    def report() -> str:
        return (
            f"$ {shlex.join(command)}\n(exit {code})\n{output[-LOG_TAIL_CHARS:]}\n"
            f"{api_stack.logs()}"
        )

    assert code == 0, report()
    assert "Authentication Required" in output, report()

    # the CLI created one analysis; its two stages ran in the planned chunks
    client = server.client()
    try:
        [analysis] = client.analyses.get().json()
        analysis_id = int(analysis["id"])
        assert analysis["status"] == "RUN_COMPLETED", report()
        assert (analysis["lookup_chunks"], analysis["analysis_chunks"]) == (
            LOOKUP_CHUNKS,
            LOSS_CHUNKS,
        ), analysis
        loss_tasks = client.analyses.sub_task_list(analysis_id).json()
    finally:
        client.api.close()
    assert [t["slug"] for t in loss_tasks] == LOSSES_SPEC.slugs(LOSS_CHUNKS), loss_tasks
    assert {t["status"] for t in loss_tasks} == {"COMPLETED"}, loss_tasks
    record = stack.analysis(analysis_id)
    tasks = [t for run in range(1, record.run_number + 1) for t in stack.subtasks(analysis_id, run)]
    input_slugs = [t.slug for t in tasks if t.stage == INPUTS_SPEC.stage]
    assert input_slugs == INPUTS_SPEC.slugs(LOOKUP_CHUNKS), [(t.stage, t.slug) for t in tasks]
    assert {t.status for t in tasks} == {"COMPLETED"}, [(t.slug, t.status) for t in tasks]

    # the archive the CLI downloaded: GUL, IL and RI outputs, equal to oasislmf's own run
    archive = out_dir / f"analysis_{analysis_id}_output.tar.gz"
    assert archive.is_file(), f"{sorted(p.name for p in out_dir.iterdir())}\n{report()}"
    ours = extract(archive, tmp_path / "extracted")
    names = [p.name for p in ours.rglob("*") if p.is_file()]
    assert any(n.startswith("gul_") for n in names), names
    assert any(n.startswith("il_") for n in names), names
    assert any(n.startswith("ri_") for n in names), names
    oracle = oracle_run(
        PIWIND,
        location=LOCATIONS,
        accounts=ACCOUNTS,
        settings=settings,
        run_dir=tmp_path / "oracle",
        timeout=ORACLE_TIMEOUT_S,
        ri_info=RI_INFO,
        ri_scope=RI_SCOPE,
    )
    assert_outputs_equal(ours, oracle.output_dir, note="oasislmf api run, 3 lookup/4 loss chunks")
