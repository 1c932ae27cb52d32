"""Parquet exposure files, told by content, end to end; and exposure content refused.

Covers: PiWind's 10-row location, accounts and reinsurance files as parquet, stored under
``.csv`` names (content decides, not the name): the input files from 3 lookup chunks and
the losses of 3 loss chunks (GUL, IL, RI) equal oasislmf's own run on the same parquet
files. Through the API: a parquet upload named ``.csv`` is stored as parquet; a parquet
location file without a required column is refused at upload naming the column, and a
file that is neither CSV nor parquet is refused, each leaving neither a record nor a file.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest
import requests

from tests import oracle
from tests.integration import oasis_support as sup
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401
from worker.oasis_env import prepare_process

needs_piwind = pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository")


def _parquet(source: Path, target: Path, *, drop: str | None = None) -> Path:
    frame = pd.read_csv(source)
    if drop:
        frame = frame.drop(columns=[drop])
    frame.to_parquet(target, index=False)
    return target


@needs_piwind
@pytest.mark.timeout(1800)
def test_parquet_portfolio_equals_oasislmf(tmp_path: Path) -> None:
    prepare_process()
    named_csv, named_parquet = tmp_path / "as-csv", tmp_path / "as-parquet"
    named_csv.mkdir()
    named_parquet.mkdir()
    files = {}
    for kind, source in (
        ("location", sup.PIWIND_10),
        ("accounts", sup.PIWIND_ACC),
        ("ri_info", sup.PIWIND_RI_INFO),
        ("ri_scope", sup.PIWIND_RI_SCOPE),
    ):
        # ours are parquet named .csv; oasislmf's own run needs the .parquet names
        _parquet(source, named_csv / f"{kind}.csv")
        files[kind] = _parquet(source, named_parquet / f"{kind}.parquet")
    settings = sup.piwind_settings(ri=True)
    want = oracle.oracle_run(
        sup.PIWIND,
        location=files["location"],
        accounts=files["accounts"],
        settings=settings,
        run_dir=tmp_path / "oracle",
        ri_info=files["ri_info"],
        ri_scope=files["ri_scope"],
    )
    inputs = sup.run_inputs(
        sup.piwind(),
        named_csv / "location.csv",
        named_csv / "accounts.csv",
        settings,
        tmp_path / "ours",
        lookup_chunks=3,
        ri_files=(named_csv / "ri_info.csv", named_csv / "ri_scope.csv"),
    )
    oracle.assert_inputs_equal(inputs, want.input_dir)
    out = sup.run_losses(sup.piwind(), inputs, settings, 3, tmp_path / "losses")
    assert {"gul_S1_melt.csv", "il_S1_melt.csv", "ri_S1_melt.csv"} <= {
        p.name for p in out.iterdir()
    }
    oracle.assert_outputs_equal(out, want.output_dir, note="parquet exposure, 3 loss chunks")


def _upload(server: ApiServer, data: bytes, name: str, ctype: str) -> requests.Response:
    s = server.session()
    s.post(f"{server.url}/v2/portfolios/", json={"name": "p"}, timeout=5).raise_for_status()
    return s.post(
        f"{server.url}/v2/portfolios/1/location_file/",
        files={"file": (name, data, ctype)},
        timeout=10,
    )


def _uploads(server: ApiServer) -> list[Path]:
    root = server.settings.core.storage_dir / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@needs_piwind
def test_a_parquet_upload_named_csv_is_stored_as_parquet(api_server: ApiServer) -> None:
    buf = io.BytesIO()
    pd.read_csv(sup.PIWIND_10).to_parquet(buf, index=False)
    r = _upload(api_server, buf.getvalue(), "locations.csv", "text/csv")
    assert r.status_code == 200, r.text
    [stored] = _uploads(api_server)
    assert stored.name == "locations.parquet"
    got = api_server.session().get(f"{api_server.url}/v2/portfolios/1/location_file/", timeout=5)
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.content == buf.getvalue()


@needs_piwind
def test_a_parquet_without_a_required_column_is_refused(api_server: ApiServer) -> None:
    buf = io.BytesIO()
    pd.read_csv(sup.PIWIND_10).drop(columns=["LocPerilsCovered"]).to_parquet(buf, index=False)
    r = _upload(api_server, buf.getvalue(), "locations.parquet", "application/octet-stream")
    assert r.status_code == 400, r.text
    assert r.json() == {
        "file": ["the location file (parquet) is missing required OED column(s): LocPerilsCovered"]
    }
    assert _uploads(api_server) == []
    portfolio = api_server.session().get(f"{api_server.url}/v2/portfolios/1/", timeout=5).json()
    assert portfolio["location_file"] is None


def test_content_neither_csv_nor_parquet_is_refused(api_server: ApiServer) -> None:
    data = gzip.compress(b"PortNumber,AccNumber\n1,A1\n")
    r = _upload(api_server, data, "locations.csv", "text/csv")
    assert r.status_code == 400, r.text
    assert "neither CSV" in r.json()["file"][0] and "nor parquet" in r.json()["file"][0]
    assert _uploads(api_server) == []
