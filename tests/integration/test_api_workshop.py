"""The workshop notebook's calls, through the official ``APIClient``, on PiWind.

The notebook uploads PiWind's 10-row location file and nothing else, posts PiWind's stock
``analysis_settings.json`` (GUL, IL and RI outputs all asked for), chunks FIXED 8/8, then
runs again chunked DYNAMIC with 100 events per chunk (PiWind's 1,447 events: 15 chunks).
Covers: every step succeeds; the IL and RI perspectives, whose inputs are missing, are
dropped with a warning naming what is missing (in the analysis's API body and in the run's
log), as oasislmf drops them; the GUL outputs equal oasislmf's own unchunked run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.piwind_api import LOCATIONS, ApiStack, extract, piwind_api_stack
from tests.oracle import assert_outputs_equal, oracle_run
from tests.shared_data import PIWIND

pytestmark = [
    pytest.mark.skipif(not PIWIND.is_dir(), reason="../shared/piwind is not present"),
    pytest.mark.timeout(1800),
    # the official client's upload from a path leaves the file open
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

SETTINGS = PIWIND / "analysis_settings.json"
FIXED = {
    "lookup_strategy": "FIXED_CHUNKS",
    "fixed_lookup_chunks": 8,
    "loss_strategy": "FIXED_CHUNKS",
    "fixed_analysis_chunks": 8,
}
DYNAMIC = {"loss_strategy": "DYNAMIC_CHUNKS", "dynamic_events_per_analysis": 100}
IL_WARNING = "IL losses (il_output) are dropped: the portfolio has no accounts file"
RI_WARNING = (
    "RI losses (ri_output) are dropped: the portfolio has no accounts file, "
    "reinsurance info file and reinsurance scope file"
)


@pytest.fixture
def api_stack(redis_url: str, tmp_path: Path) -> Iterator[ApiStack]:
    with piwind_api_stack(redis_url, tmp_path) as api:
        yield api


def _run_and_check(client: Any, analysis_id: int, chunks: int, out: Path, oracle: Path) -> None:
    client.run_analysis(analysis_id, poll_interval=1)
    analysis = client.analyses.get(analysis_id).json()
    assert analysis["status"] == "RUN_COMPLETED", analysis
    assert analysis["analysis_chunks"] == chunks, analysis
    assert analysis["warnings"] == [IL_WARNING, RI_WARNING], analysis
    tasks = client.analyses.sub_task_list(analysis_id).json()
    assert {t["status"] for t in tasks} == {"COMPLETED"}, tasks
    log = client.task_status.output_log.get(tasks[0]["id"]).text
    assert IL_WARNING in log and RI_WARNING in log, log
    run_log = client.analyses.run_log_file.get(analysis_id)
    assert run_log.headers["content-type"] == "text/plain", run_log.headers
    assert run_log.text.startswith("== log/warnings.log\n"), run_log.text[:500]
    assert IL_WARNING in run_log.text and RI_WARNING in run_log.text, run_log.text[:500]
    out.mkdir()
    client.download_output(analysis_id, str(out))
    ours = extract(out / f"analysis_{analysis_id}_output.tar.gz", out / "extracted")
    names = sorted(p.name for p in ours.rglob("*") if p.is_file())
    assert any(n.startswith("gul_") for n in names), names
    assert not any(n.startswith(("il_", "ri_")) for n in names), names
    assert_outputs_equal(ours, oracle, note=f"workshop notebook, {chunks} loss chunks")


def _check_lookup_artefacts(client: Any, analysis_id: int) -> None:
    """The keys files as CSV; the exposure summary and summary levels as JSON."""
    analyses = client.analyses
    keys = analyses.lookup_success_file.get(analysis_id)
    assert keys.headers["content-type"] == "text/csv", keys.headers
    assert len(keys.text.strip().splitlines()) > 10, keys.text  # 10 locations, 4 coverages
    errors = analyses.lookup_errors_file.get(analysis_id)
    assert errors.headers["content-type"] == "text/csv", errors.headers
    validation = analyses.lookup_validation_file.get(analysis_id)
    assert validation.headers["content-type"] == "application/json", validation.headers
    assert isinstance(validation.json(), dict) and validation.json(), validation.text
    levels = analyses.summary_levels_file.get(analysis_id)
    assert levels.headers["content-type"] == "application/json", levels.headers
    assert "GUL" in levels.json(), levels.text  # the fields GUL summaries may group by


def test_workshop_notebook_runs_unmodified(api_stack: ApiStack, tmp_path: Path) -> None:
    client = api_stack.server.client()
    try:
        [model] = client.models.search({"model_id": "PiWind"}).json()
        client.models.chunking_configuration.post(model["id"], FIXED)
        portfolio = client.upload_inputs(portfolio_name="workshop", location_fp=str(LOCATIONS))
        analysis = client.create_analysis(portfolio["id"], model["id"], analysis_name="workshop")
        analysis_id = int(analysis["id"])
        client.upload_settings(analysis_id, str(SETTINGS))
        client.run_generate(analysis_id, poll_interval=1)
        ready = client.analyses.get(analysis_id).json()
        assert ready["status"] == "READY", f"{ready}\n{api_stack.logs()}"
        assert ready["lookup_chunks"] == 8, ready
        _check_lookup_artefacts(client, analysis_id)

        oracle = oracle_run(
            PIWIND,
            location=LOCATIONS,
            accounts=None,
            settings=json.loads(SETTINGS.read_text("utf-8")),
            run_dir=tmp_path / "oracle",
            timeout=900.0,
        )
        _run_and_check(client, analysis_id, 8, tmp_path / "fixed", oracle.output_dir)

        client.models.chunking_configuration.post(model["id"], DYNAMIC)
        _run_and_check(client, analysis_id, 15, tmp_path / "dynamic", oracle.output_dir)
    finally:
        client.api.close()
