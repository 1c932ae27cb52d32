"""A portfolio's OED validation, reporting currency and currency conversion settings.

Covers, against a real API server: the official ``oasislmf api validate`` CLI validates
PiWind's location and accounts files (every file validated, status RUN_COMPLETED) and
one with an unknown country code (ERROR, the errors file naming the column); the
reporting currency and currency conversion endpoints keep, serve and clear what they are
given, and refuse a currency that is no ISO code and settings that are not ods_tools'.
Under PiWind: input files generated with a reporting currency and conversion settings
equal oasislmf's own run given the same.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest
import requests

from tests import oracle
from tests.integration import oasis_support as sup
from tests.integration.api_support import PASSWORD, USER, ApiServer, api_server_fixture  # noqa: F401
from tests.integration.piwind_api import run_cli
from worker import lookup
from worker.oasis_env import prepare_process

needs_piwind = pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository")
CONVERSION = {
    "currency_conversion_type": "DictBasedCurrencyRates",
    "source_type": "list",
    "currency_rates": [["GBP", "USD", 1.25]],
}


def _portfolio(server: ApiServer, location: bytes) -> requests.Session:
    s = server.session()
    s.post(f"{server.url}/v2/portfolios/", json={"name": "p"}, timeout=5).raise_for_status()
    for field, name, data in (
        ("location_file", "location.csv", location),
        ("accounts_file", "account.csv", sup.PIWIND_ACC.read_bytes()),
    ):
        s.post(
            f"{server.url}/v2/portfolios/1/{field}/",
            files={"file": (name, data, "text/csv")},
            timeout=10,
        ).raise_for_status()
    return s


def _validate_with_cli(server: ApiServer, tmp_path: Path) -> tuple[int | None, str]:
    login = tmp_path / "login.json"
    login.write_text(json.dumps({"username": USER, "password": PASSWORD}), encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "oasislmf"),
        *("api", "validate", "--server-url", server.url, "--server-login-json", str(login)),
        *("--portfolio-id", "1", "--poll-interval", "1"),
    ]
    return run_cli(command, tmp_path, timeout=120)


@needs_piwind
def test_official_cli_validates_a_portfolio(api_server: ApiServer, tmp_path: Path) -> None:
    s = _portfolio(api_server, sup.PIWIND_10.read_bytes())
    base = f"{api_server.url}/v2/portfolios/1"
    assert s.get(f"{base}/validate/", timeout=5).json()["location_validated"] is None
    code, output = _validate_with_cli(api_server, tmp_path)
    assert code == 0, output
    assert s.get(f"{base}/validate/", timeout=5).json() == {
        "location_validated": True,
        "accounts_validated": True,
        "reinsurance_info_validated": None,
        "reinsurance_scope_validated": None,
    }
    assert s.get(f"{base}/", timeout=5).json()["validation_status"] == "RUN_COMPLETED"
    assert s.get(f"{base}/errors_file/", timeout=5).status_code == 404


@needs_piwind
def test_validation_errors_are_named(api_server: ApiServer, tmp_path: Path) -> None:
    frame = pd.read_csv(sup.PIWIND_10)
    frame.loc[2, "CountryCode"] = "XX"
    s = _portfolio(api_server, frame.to_csv(index=False).encode())
    base = f"{api_server.url}/v2/portfolios/1"
    code, output = _validate_with_cli(api_server, tmp_path)
    assert code == 0, output
    result = s.get(f"{base}/validate/", timeout=5).json()
    assert (result["location_validated"], result["accounts_validated"]) == (False, True)
    assert s.get(f"{base}/", timeout=5).json()["validation_status"] == "ERROR"
    errors = s.get(f"{base}/errors_file/", timeout=5)
    assert errors.headers["content-type"] == "text/csv"
    assert "CountryCode" in errors.text and "location" in errors.text, errors.text


def test_reporting_currency_and_currency_conversion(api_server: ApiServer) -> None:
    s = api_server.session()
    s.post(f"{api_server.url}/v2/portfolios/", json={"name": "p"}, timeout=5).raise_for_status()
    base = f"{api_server.url}/v2/portfolios/1"
    assert s.get(f"{base}/reporting_currency/", timeout=5).status_code == 404
    bad = s.post(f"{base}/reporting_currency/", json={"reporting_currency": "usd"}, timeout=5)
    assert bad.status_code == 400 and "reporting_currency" in bad.json(), bad.text
    ok = s.post(f"{base}/reporting_currency/", json={"reporting_currency": "USD"}, timeout=5)
    assert ok.json() == {"reporting_currency": "USD"}
    assert s.get(f"{base}/", timeout=5).json()["reporting_currency"] == "USD"
    assert s.delete(f"{base}/reporting_currency/", timeout=5).status_code == 200
    assert s.get(f"{base}/reporting_currency/", timeout=5).status_code == 404

    data = json.dumps(CONVERSION).encode()
    up = s.post(
        f"{base}/currency_conversion_json/",
        files={"file": ("conversion.json", data, "application/json")},
        timeout=5,
    )
    assert up.status_code == 200, up.text
    got = s.get(f"{base}/currency_conversion_json/", timeout=5)
    assert got.headers["content-type"] == "application/json" and got.content == data
    assert s.get(f"{base}/", timeout=5).json()["currency_conversion_json"] is not None
    bad_json = s.post(
        f"{base}/currency_conversion_json/",
        files={"file": ("c.json", b'{"rates": 1}', "application/json")},
        timeout=5,
    )
    assert bad_json.status_code == 400 and "currency_conversion_type" in bad_json.text
    assert s.delete(f"{base}/currency_conversion_json/", timeout=5).status_code == 200
    assert s.get(f"{base}/", timeout=5).json()["currency_conversion_json"] is None


@needs_piwind
@pytest.mark.timeout(900)
def test_reporting_currency_input_files_equal_oasislmf(tmp_path: Path) -> None:
    prepare_process()
    conversion = tmp_path / "conversion.json"
    conversion.write_text(json.dumps(CONVERSION), encoding="utf-8")
    settings = sup.piwind_settings()
    want = oracle.oracle_run(
        sup.PIWIND,
        location=sup.PIWIND_10,
        accounts=sup.PIWIND_ACC,
        settings=settings,
        run_dir=tmp_path / "oracle",
        extra_args=("--currency-conversion-json", str(conversion), "--reporting-currency", "USD"),
    )
    model, out = sup.piwind(), tmp_path / "ours"
    keys, errors = sup.run_keys(
        model, sup.PIWIND_10, 2, out, accounts_file=sup.PIWIND_ACC, settings=settings
    )
    options = lookup.generate_options(
        model,
        location_file=sup.PIWIND_10,
        accounts_file=sup.PIWIND_ACC,
        settings_file=sup.settings_file(settings, out),
        currency_conversion_json=conversion,
        reporting_currency="USD",
    )
    sup.write_inputs(options, keys, errors, out / "input")
    oracle.assert_inputs_equal(out / "input", want.input_dir)
