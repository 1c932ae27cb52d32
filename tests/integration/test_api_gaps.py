"""Smaller gaps of the REST API closed (a real API server over real Redis and SQLite).

Covers: JSON nested past the depth limit answers 400 (a body and an uploaded settings
file), not 500; analysis ids are never used twice and a deleted analysis's stored files go
with it; an upload's content is checked (binary, not UTF-8, another delimiter, missing
required columns, no parquet magic; a real parquet file is accepted); Content-Disposition
carries a safe name; a refresh token is good for one refresh.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import requests

from oasis_keda.api.files import content_disposition
from oasis_keda.api.json_depth import MAX_JSON_DEPTH
from oasis_keda.core.registry import Registry
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401

HEADER = "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency"
LOCATION_CSV = f"{HEADER}\n1,A1,L1,GB,WTC,GBP\n".encode()


def _upload(server: ApiServer, field: str, data: bytes, name: str, ctype: str) -> Any:
    return server.session().post(
        f"{server.url}/v2/portfolios/1/{field}/",
        files={"file": (name, io.BytesIO(data), ctype)},
        timeout=10,
    )


@pytest.fixture
def portfolio(api_server: ApiServer) -> ApiServer:
    r = api_server.session().post(f"{api_server.url}/v2/portfolios/", json={"name": "p"})
    assert r.status_code == 201
    return api_server


def test_deep_json_answers_400(portfolio: ApiServer, redis_client: redis.Redis) -> None:
    s = portfolio.session()
    deep = "[" * 10_000 + "]" * 10_000
    r = s.post(
        f"{portfolio.url}/v2/portfolios/",
        data=deep,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert f"at most {MAX_JSON_DEPTH} are accepted" in r.json()["detail"]
    # nesting inside strings does not count; the limit itself is accepted
    ok = {"name": "[" * 100, "x": [[[]]]}
    assert s.post(f"{portfolio.url}/v2/portfolios/", json=ok, timeout=10).status_code == 201

    Registry(redis_client).register("m", supplier_id="S", model_name="M", version_id="1")
    assert _upload(portfolio, "location_file", LOCATION_CSV, "l.csv", "text/csv").ok
    r = s.post(f"{portfolio.url}/v2/analyses/", json={"name": "a", "portfolio": 1, "model": 1})
    assert r.status_code == 201, r.text
    r = s.post(
        f"{portfolio.url}/v2/analyses/1/settings_file/",
        files={"file": ("s.json", io.BytesIO(deep.encode()), "application/json")},
        timeout=10,
    )
    assert r.status_code == 400
    assert "nested 10000 levels deep" in r.json()["file"][0]


def test_analysis_ids_are_never_reused_and_files_go_with_the_analysis(
    portfolio: ApiServer, redis_client: redis.Redis
) -> None:
    s = portfolio.session()
    Registry(redis_client).register("m", supplier_id="S", model_name="M", version_id="1")
    assert _upload(portfolio, "location_file", LOCATION_CSV, "l.csv", "text/csv").ok
    body = {"portfolio": 1, "model": 1}
    ids = [
        s.post(f"{portfolio.url}/v2/analyses/", json={"name": n, **body}).json()["id"] for n in "ab"
    ]
    assert ids == [1, 2]
    settings = (
        b'{"model_supplier_id": "S", "model_name_id": "M", "model_settings": {}, '
        b'"gul_output": true, "gul_summaries": [{"id": 1}]}'
    )
    r = s.post(
        f"{portfolio.url}/v2/analyses/2/settings_file/",
        files={"file": ("analysis_settings.json", io.BytesIO(settings), "application/json")},
    )
    assert r.status_code in (200, 201), r.text
    storage = portfolio.settings.core.storage_dir
    run_dir = storage / "analyses" / "2" / "runs" / "1"  # what a run leaves behind
    run_dir.mkdir(parents=True)
    (run_dir / "traceback.txt").write_text("x")
    uploads_before = {p for p in (storage / "uploads").rglob("*") if p.is_file()}

    assert s.delete(f"{portfolio.url}/v2/analyses/2/").status_code == 204
    assert not (storage / "analyses" / "2").exists()
    uploads_after = {p for p in (storage / "uploads").rglob("*") if p.is_file()}
    assert len(uploads_before - uploads_after) == 1  # its settings file; the portfolio's stays
    new = s.post(f"{portfolio.url}/v2/analyses/", json={"name": "c", **body}).json()["id"]
    assert new == 3


def _parquet(tmp_path: Path, columns: dict[str, list[str]]) -> bytes:
    path = tmp_path / "x.parquet"
    pd.DataFrame(columns).to_parquet(path, index=False)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("field", "data", "name", "ctype", "message"),
    [
        ("location_file", b"\x00\x01\x02binary", "l.csv", "text/csv", "binary content"),
        ("location_file", f"{HEADER}\n1,A,L,GB,WTC,GBP\xe9\n".encode("latin-1"), "l.csv", "text/csv", "not UTF-8: byte"),
        ("location_file", HEADER.replace(",", ";").encode() + b"\n", "l.csv", "text/csv", "semicolon-separated"),
        ("location_file", b"PortNumber,AccNumber\n1,A\n", "l.csv", "text/csv", "missing required OED column(s): LocNumber"),
        ("accounts_file", b"AccNumber\nA\n", "a.csv", "text/csv", "missing required OED column(s): PortNumber"),
        ("location_file", b"not a parquet file at all", "l.parquet", "application/octet-stream", "not a parquet file"),
    ],
    ids=["binary", "latin-1", "semicolons", "columns", "accounts-columns", "parquet-magic"],
)  # fmt: skip
def test_upload_content_is_checked(
    portfolio: ApiServer, field: str, data: bytes, name: str, ctype: str, message: str
) -> None:
    r = _upload(portfolio, field, data, name, ctype)
    assert r.status_code == 400
    assert message in r.json()["file"][0]
    got = portfolio.session().get(f"{portfolio.url}/v2/portfolios/1/").json()
    assert got[field] is None
    storage = portfolio.settings.core.storage_dir
    assert not [p for p in (storage / "uploads").rglob("*") if p.is_file()]


def test_a_parquet_upload_is_accepted(portfolio: ApiServer, tmp_path: Path) -> None:
    columns = {c: ["1"] for c in HEADER.split(",")}
    r = _upload(
        portfolio,
        "location_file",
        _parquet(tmp_path, columns),
        "l.parquet",
        "application/octet-stream",
    )
    assert r.status_code in (200, 201), r.text
    missing = _parquet(tmp_path, {"PortNumber": ["1"]})
    r = _upload(portfolio, "location_file", missing, "l.parquet", "application/octet-stream")
    assert r.status_code == 400 and "AccNumber" in r.json()["file"][0]


def test_content_disposition_is_sanitised(portfolio: ApiServer) -> None:
    name = '../../x"; evil=1.csv'
    assert _upload(portfolio, "location_file", LOCATION_CSV, name, "text/csv").ok
    s = portfolio.session()
    stored = s.get(f"{portfolio.url}/v2/portfolios/1/").json()["location_file"]["name"]
    assert stored.startswith("../../x")  # the uploader's name, as it arrived
    header = s.get(f"{portfolio.url}/v2/portfolios/1/location_file/").headers["Content-Disposition"]
    assert header == content_disposition(stored)
    ascii_name = header.split('filename="', 1)[1].split('"', 1)[0]
    assert ascii_name.startswith("x") and ascii_name.endswith("evil_1.csv")
    assert ".." not in header and "/" not in header and ";" not in ascii_name
    assert header.count('"') == 2  # only the quotes around the ASCII name


def test_a_refresh_token_is_rotated_and_revoked(api_server: ApiServer) -> None:
    pair = requests.post(
        f"{api_server.url}/access_token/",
        json={"username": "tester", "password": "s3cret-pass"},
        timeout=5,
    ).json()

    def refresh(token: str) -> requests.Response:
        return requests.post(
            f"{api_server.url}/refresh_token/",
            headers={"authorization": f"Bearer {token}"},
            timeout=5,
        )

    first = refresh(pair["refresh_token"])
    assert first.status_code == 200
    new = first.json()
    assert new["refresh_token"] != pair["refresh_token"]
    again = refresh(pair["refresh_token"])  # the used one is revoked
    assert again.status_code == 401
    assert refresh(new["refresh_token"]).status_code == 200
