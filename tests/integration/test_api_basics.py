"""The API without workers, driven by the official oasislmf client and plain requests.

Covers: health and server info without a token; login, wrong credentials, missing and bad
tokens (401) and the client's refresh after an expired access token; models registered in
the registry (as the CLI does) shown with supplier/model/version and an integer id; model
create/search; chunking and scaling configurations read and written through the registry
with refusals that leave the stored value unchanged; model settings from the model dir;
portfolios and streamed uploads with upstream's type checks and exact download types;
analyses creation refusals and settings validation; sub-task logs; DRF-style errors;
upstream datetime format; the OpenAPI document at /v2/schema/; the default-login refusal.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pandas as pd
import pytest
import redis
import requests
from click.testing import CliRunner
from oasislmf.utils.exceptions import OasisException

from oasis_keda.api import ApiSettings
from oasis_keda.api.auth import SECRET_FILE_NAME
from oasis_keda.api.errors import ApiConfigError, AuthError
from oasis_keda.core.registry import Registry
from oasis_keda.core.store import SubTask, make_engine, make_session_factory
from oasis_keda.runtime.synth import write_synthetic_model
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401

DT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LOCATION_CSV = (
    b"PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
    b"1,A1,L1,GB,WTC,GBP,51.5,-0.5\n"
)


@pytest.fixture
def registry(redis_client: redis.Redis) -> Registry:
    return Registry(redis_client)


@pytest.fixture
def synth_dir(tmp_path: Path) -> Path:
    write_synthetic_model(tmp_path / "synth", locations=5, events=12, seed=1)
    return tmp_path / "synth"


def _client(server: ApiServer) -> Any:
    return server.client()


# -- auth ---------------------------------------------------------------------------------
def test_health_and_server_info_answer_without_a_token(api_server: ApiServer) -> None:
    assert requests.get(f"{api_server.url}/healthcheck/", timeout=5).json() == {"status": "OK"}
    r = requests.get(f"{api_server.url}/server_info/", headers={"authorization": ""}, timeout=5)
    assert r.status_code == 200
    assert r.json()["config"]["API_AUTH_TYPE"] == "simple"


def test_every_other_endpoint_needs_a_valid_token(api_server: ApiServer) -> None:
    for path in ("/v2/models/", "/v2/portfolios/", "/v2/analyses/", "/v2/models/1/"):
        r = requests.get(api_server.url + path, timeout=5)
        assert r.status_code == 401, path
        assert "detail" in r.json()
    r = requests.get(
        f"{api_server.url}/v2/models/", headers={"authorization": "Bearer nonsense"}, timeout=5
    )
    assert r.status_code == 401


def test_wrong_credentials_are_refused(api_server: ApiServer) -> None:
    r = requests.post(
        f"{api_server.url}/access_token/", json={"username": "tester", "password": "no"}, timeout=5
    )
    assert r.status_code == 401
    assert r.json()["detail"]
    with pytest.raises(OasisException, match="Authentication Error"):
        api_server.client(password="wrong")


def test_a_refresh_token_is_no_access_token_and_vice_versa(api_server: ApiServer) -> None:
    pair = requests.post(
        f"{api_server.url}/access_token/",
        json={"username": "tester", "password": "s3cret-pass"},
        timeout=5,
    ).json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 3600
    as_access = {"authorization": f"Bearer {pair['refresh_token']}"}
    assert (
        requests.get(f"{api_server.url}/v2/models/", headers=as_access, timeout=5).status_code
        == 401
    )
    as_refresh = {"authorization": f"Bearer {pair['access_token']}"}
    r = requests.post(f"{api_server.url}/refresh_token/", headers=as_refresh, timeout=5)
    assert r.status_code == 401
    r = requests.post(f"{api_server.url}/refresh_token/", headers=as_access, timeout=5)
    assert r.status_code == 200 and r.json()["access_token"]


def test_the_client_refreshes_an_expired_access_token(api_server: ApiServer) -> None:
    client = _client(api_server)
    secret = (api_server.settings.core.storage_dir / SECRET_FILE_NAME).read_text().strip()
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "tester", "token_type": "access", "iat": now - 7200, "exp": now - 3600},
        secret,
        algorithm="HS256",
    )
    client.api.headers["authorization"] = f"Bearer {expired}"
    assert client.models.get().json() == []
    assert client.api.headers["authorization"] != f"Bearer {expired}"


# -- models -------------------------------------------------------------------------------
def test_a_registered_model_shows_with_its_identity(
    api_server: ApiServer, registry: Registry, synth_dir: Path
) -> None:
    registry.register(
        "synth",
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
        model_dir=str(synth_dir),
    )
    client = _client(api_server)
    models = client.models.search({"supplier_id__contains": "oasis"}).json()
    assert [(m["id"], m["supplier_id"], m["model_id"], m["version_id"]) for m in models] == [
        (1, "OasisKeda", "Synth", "1")
    ]
    model = models[0]
    assert DT_RE.match(model["created"]) and model["run_mode"] == "V2"
    assert model["chunking_configuration"].endswith("/v2/models/1/chunking_configuration/")
    assert client.models.search({"model_id": "nope"}).json() == []
    assert client.models.get(1).json()["id"] == 1
    settings = client.models.settings.get(1).json()
    assert settings["model_settings"]["event_set"]["options"][0]["number_of_events"] == 12


def test_a_model_created_over_http_is_in_the_registry(
    api_server: ApiServer, registry: Registry
) -> None:
    client = _client(api_server)
    r = client.models.create("Acme", "Storm", "2")
    assert r.status_code == 201
    pk = r.json()["id"]
    assert registry.get_by_pk(pk).supplier_id == "Acme"
    with pytest.raises(requests.HTTPError) as err:
        client.models.create("Acme", "Storm", "2")
    assert err.value.response.status_code == 400
    assert "non_field_errors" in err.value.response.json()
    with pytest.raises(requests.HTTPError) as err:
        client.models.settings.get(pk)
    assert err.value.response.status_code == 404


def test_configurations_go_through_the_registry(api_server: ApiServer, registry: Registry) -> None:
    registry.register("m1", supplier_id="S", model_name="M", version_id="1")
    client = _client(api_server)
    assert client.models.chunking_configuration.get(1).json()["fixed_analysis_chunks"] == 1
    full = client.models.chunking_configuration.post(
        1, {"loss_strategy": "DYNAMIC_CHUNKS", "dynamic_events_per_analysis": 5}
    ).json()
    assert full["loss_strategy"] == "DYNAMIC_CHUNKS" and full["dynamic_chunks_max"] == 200
    assert registry.get("m1").chunking.dynamic_events_per_analysis == 5
    scaling = client.models.scaling_configuration.post(
        1, {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 3}
    ).json()
    assert scaling["worker_count_max"] == 3
    assert registry.get("m1").scaling.scaling_strategy == "QUEUE_LOAD"


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("chunking", {"fixed_analysis_chunks": 0}, "fixed_analysis_chunks"),
        ("chunking", {"dynamic_chunks_max": "7"}, "dynamic_chunks_max"),
        ("chunking", {"loss_strategy": "SOMETIMES"}, "loss_strategy"),
        ("scaling", {"worker_count_min": 5, "worker_count_max": 2}, "worker_count_min"),
        ("scaling", {"chunks_per_worker": 0}, "chunks_per_worker"),
        ("scaling", {"worker_count_fixed": -1}, "worker_count_fixed"),
    ],
)
def test_an_invalid_configuration_is_refused_and_left_unchanged(
    api_server: ApiServer, registry: Registry, kind: str, body: dict[str, Any], field: str
) -> None:
    registry.register("m1", supplier_id="S", model_name="M", version_id="1")
    before = registry.get("m1")
    s = api_server.session()
    r = s.post(f"{api_server.url}/v2/models/1/{kind}_configuration/", json=body, timeout=5)
    assert r.status_code == 400
    assert field in r.json() and isinstance(r.json()[field], str)
    after = registry.get("m1")
    assert (after.chunking, after.scaling) == (before.chunking, before.scaling)


def test_unknown_ids_answer_404(api_server: ApiServer) -> None:
    s = api_server.session()
    for path in (
        "/v2/models/7/",
        "/v2/models/7/chunking_configuration/",
        "/v2/portfolios/7/",
        "/v2/portfolios/7/location_file/",
        "/v2/analyses/7/",
        "/v2/analyses/7/sub_task_list/",
        "/v2/analysis-task-statuses/7/",
        "/v2/analysis-task-statuses/7/output_log/",
        "/v2/models/99999999999999999999999/",
    ):
        r = s.get(api_server.url + path, timeout=5)
        assert r.status_code == 404, path
        assert r.json() == {"detail": "Not found."}, path


# -- portfolios and files -----------------------------------------------------------------
def test_portfolio_upload_and_exact_download(api_server: ApiServer) -> None:
    client = _client(api_server)
    r = client.portfolios.create("p one")
    assert r.status_code == 201 and r.json()["id"] == 1
    up = client.portfolios.location_file.post(1, io.BytesIO(LOCATION_CSV), content_type="text/csv")
    body = up.json()
    assert body["filename"] == "data" and DT_RE.match(body["created"])
    assert set(body) >= {"created", "file", "filename", "groups", "conversion_state"}
    got = client.portfolios.location_file.get(1)
    assert got.headers["Content-Type"] == "text/csv"
    assert got.content == LOCATION_CSV
    assert "attachment" in got.headers["Content-Disposition"]
    frame = client.portfolios.location_file.get_dataframe(1)
    assert list(frame["LocNumber"]) == ["L1"]
    portfolio = client.portfolios.search({"name": "P ONE"}).json()
    assert len(portfolio) == 1 and portfolio[0]["location_file"]["name"] == "data"
    assert client.portfolios.get(1).json()["accounts_file"] is None


@pytest.mark.parametrize(
    ("filename", "ctype"),
    [("data", "text/plain"), ("loc.csv", "application/json"), ("loc.parquet", "text/csv")],
)
def test_an_upload_of_the_wrong_type_is_refused(
    api_server: ApiServer, filename: str, ctype: str
) -> None:
    client = _client(api_server)
    client.portfolios.create("p")
    with pytest.raises(requests.HTTPError) as err:
        client.portfolios.location_file.upload_byte(1, io.BytesIO(LOCATION_CSV), filename, ctype)
    assert err.value.response.status_code == 400
    assert "file" in err.value.response.json()
    assert client.portfolios.get(1).json()["location_file"] is None


def test_an_oversized_upload_is_refused(redis_url: str, tmp_path: Path) -> None:
    from tests.integration.api_support import api_settings, start_server

    server = start_server(api_settings(redis_url, tmp_path / "s", max_upload_bytes=50))
    try:
        s = server.session()
        s.post(f"{server.url}/v2/portfolios/", json={"name": "p"}, timeout=5)
        r = s.post(
            f"{server.url}/v2/portfolios/1/location_file/",
            files={"file": ("data", LOCATION_CSV * 10, "text/csv")},
            timeout=5,
        )
        assert r.status_code == 413
        assert s.get(f"{server.url}/v2/portfolios/1/location_file/", timeout=5).status_code == 404
        leftovers = [p for p in (tmp_path / "s" / "uploads").rglob("*") if p.is_file()]
        assert leftovers == []
    finally:
        server.stop()


# -- analyses -----------------------------------------------------------------------------
def test_analysis_creation_refusals_and_settings(
    api_server: ApiServer, registry: Registry, synth_dir: Path
) -> None:
    from oasis_keda.runtime.synth import analysis_settings

    registry.register(
        "synth",
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
        model_dir=str(synth_dir),
    )
    client = _client(api_server)
    client.portfolios.create("empty")
    with pytest.raises(requests.HTTPError) as err:
        client.analyses.create("a", 1, 1)
    assert err.value.response.status_code == 400 and "portfolio" in err.value.response.json()
    client.portfolios.location_file.post(1, io.BytesIO(LOCATION_CSV), content_type="text/csv")
    with pytest.raises(requests.HTTPError) as err:
        client.analyses.create("a", 1, 5)
    assert err.value.response.json() == {"model": ['Invalid pk "5" - object does not exist.']}
    created = client.analyses.create("a", 1, 1)
    assert created.status_code == 201
    a = created.json()
    assert (a["id"], a["status"], a["model"], a["portfolio"]) == (1, "NEW", 1, 1)
    assert a["status_count"]["TOTAL"] == 0 and a["sub_task_count"] == 0
    assert a["settings_file"] is None and a["priority"] == 4
    with pytest.raises(requests.HTTPError) as err:
        client.analyses.settings.post(1, {"gul_output": "yes please"})
    assert err.value.response.status_code == 400
    r = client.analyses.settings.post(1, analysis_settings())
    assert r.json()["filename"] == "analysis_settings.json"
    assert client.analyses.settings.get(1).json()["number_of_samples"] == 8
    assert client.analyses.get(1).json()["settings_file"].endswith("/v2/analyses/1/settings_file/")
    got = client.analyses.settings_file.get(1)
    assert got.headers["Content-Type"] == "application/json"
    assert client.analyses.sub_task_list(1).json() == []
    assert [x["id"] for x in client.analyses.search({"name": "a"}).json()] == [1]
    with pytest.raises(requests.HTTPError) as err:
        client.analyses.input_file.get(1)
    assert err.value.response.status_code == 404


def test_sub_task_logs_are_plain_text_attachments(
    api_server: ApiServer, registry: Registry, synth_dir: Path
) -> None:
    registry.register(
        "synth",
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
        model_dir=str(synth_dir),
    )
    client = _client(api_server)
    client.portfolios.create("p")
    client.portfolios.location_file.post(1, io.BytesIO(LOCATION_CSV), content_type="text/csv")
    client.analyses.create("a", 1, 1)
    engine = make_engine(api_server.settings.core.effective_database_url)
    with make_session_factory(engine)() as session:
        session.add(
            SubTask(
                analysis_id=1,
                run_number=0,
                stage="inputs",
                slug="collect-keys",
                name="Collect keys",
                task_id="abc",
                status="COMPLETED",
                queue_name="q",
                output_log="all good\n",
            )
        )
        session.commit()
    engine.dispose()
    tasks = client.analyses.sub_task_list(1).json()
    assert [t["slug"] for t in tasks] == ["collect-keys"]
    assert tasks[0]["output_log"].endswith(
        f"/v2/analysis-task-statuses/{tasks[0]['id']}/output_log/"
    )
    assert tasks[0]["error_log"] is None and DT_RE.match(tasks[0]["pending_time"])
    log = client.task_status.output_log.get(tasks[0]["id"])
    assert log.text == "all good\n"
    assert log.headers["Content-Type"] == "text/plain"
    assert log.headers["Content-Disposition"] == (
        "attachment; filename=\"abc-output.log\"; filename*=UTF-8''abc-output.log"
    )
    assert client.analyses.get(1).json()["status_count"]["COMPLETED"] == 1


# -- errors, schema, settings -------------------------------------------------------------
def test_bad_bodies_answer_drf_style_400(api_server: ApiServer) -> None:
    s = api_server.session()
    r = s.post(f"{api_server.url}/v2/portfolios/", json={}, timeout=5)
    assert r.status_code == 400 and r.json() == {"name": ["This field is required."]}
    r = s.post(
        f"{api_server.url}/v2/portfolios/",
        data=b"{not json",
        headers={"content-type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400 and "detail" in r.json()
    r = s.post(f"{api_server.url}/v2/portfolios/", json=[1, 2], timeout=5)
    assert r.status_code == 400


def test_openapi_document_is_served_at_v2_schema(api_server: ApiServer) -> None:
    r = requests.get(f"{api_server.url}/v2/schema/", timeout=5)
    assert r.status_code == 200
    doc = r.json()
    assert "/v2/analyses/{pk}/run/" in doc["paths"]
    assert "/v2/analysis-task-statuses/{pk}/output_log/" in doc["paths"]
    json.dumps(doc)


def test_default_login_is_refused_outside_the_local_runtime(tmp_path: Path) -> None:
    env = {"OASIS_KEDA_STORAGE_DIR": str(tmp_path)}
    with pytest.raises(ApiConfigError, match="insecure-default-user"):
        ApiSettings.from_env(env).check_credentials_allowed()
    ApiSettings.from_env(env | {"OASIS_KEDA_LOCAL_RUNTIME": "1"}).check_credentials_allowed()
    ApiSettings.from_env(env).replace(insecure_default_user=True).check_credentials_allowed()
    custom = env | {"OASIS_KEDA_API_USER": "u", "OASIS_KEDA_API_PASSWORD": "p"}
    ApiSettings.from_env(custom).check_credentials_allowed()
    from oasis_keda.cli import cli

    result = CliRunner().invoke(
        cli,
        ["api", "serve", "--port", "0"],
        env=env
        | {
            "OASIS_KEDA_API_USER": "",
            "OASIS_KEDA_API_PASSWORD": "",
            "OASIS_KEDA_LOCAL_RUNTIME": "",
        },
    )
    assert result.exit_code != 0 and "insecure-default-user" in result.output


def test_hashed_passwords_and_short_secrets(tmp_path: Path) -> None:
    from oasis_keda.api.auth import Authenticator
    from oasis_keda.cli import cli

    result = CliRunner().invoke(cli, ["api", "hash-password", "--password", "pw-1"])
    hashed = result.output.strip()
    assert result.exit_code == 0 and hashed.startswith("$argon2") and "pw-1" not in hashed
    settings = ApiSettings.from_env({"OASIS_KEDA_API_USER": "u", "OASIS_KEDA_API_PASSWORD": hashed})
    auth = Authenticator(settings, secret="k" * 32)
    assert auth.verify_access(auth.login("u", "pw-1").access_token) == "u"
    with pytest.raises(AuthError):
        auth.login("u", hashed)
    with pytest.raises(ApiConfigError, match="OASIS_KEDA_API_SECRET"):
        ApiSettings.from_env({"OASIS_KEDA_API_SECRET": "short"})


def test_parquet_view_and_safe_stored_names(api_server: ApiServer) -> None:
    client = _client(api_server)
    client.portfolios.create("p")
    client.portfolios.location_file.upload_byte(
        1, io.BytesIO(LOCATION_CSV), "../../../escape.csv", "text/csv"
    )
    storage = api_server.settings.core.storage_dir
    [stored] = [p for p in (storage / "uploads").rglob("*") if p.is_file()]
    assert stored.name == "escape.csv" and stored.parent.parent == storage / "uploads"
    assert client.portfolios.get(1).json()["location_file"]["name"] == "../../../escape.csv"
    s = api_server.session()
    url = f"{api_server.url}/v2/portfolios/1/location_file/"
    r = s.get(url, params={"file_format": "parquet"}, timeout=5)
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert list(pd.read_parquet(io.BytesIO(r.content))["LocNumber"]) == ["L1"]
    r = s.get(url, params={"file_format": "csv"}, timeout=5)
    assert r.headers["Content-Type"] == "text/csv" and r.content == LOCATION_CSV
    assert s.get(url, params={"file_format": "xls"}, timeout=5).status_code == 400


def test_an_analysis_chunking_configuration_of_its_own(
    api_server: ApiServer, registry: Registry, synth_dir: Path
) -> None:
    registry.register(
        "synth",
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
        model_dir=str(synth_dir),
    )
    registry.set_chunking("synth", {"fixed_lookup_chunks": 2})
    client = _client(api_server)
    client.portfolios.create("p")
    client.portfolios.location_file.post(1, io.BytesIO(LOCATION_CSV), content_type="text/csv")
    client.analyses.create("a", 1, 1)
    assert client.analyses.chunking_configuration.get(1).json()["fixed_lookup_chunks"] == 2
    own = client.analyses.chunking_configuration.post(1, {"fixed_analysis_chunks": 6}).json()
    assert (own["fixed_lookup_chunks"], own["fixed_analysis_chunks"]) == (2, 6)
    with pytest.raises(requests.HTTPError) as err:
        client.analyses.chunking_configuration.post(1, {"dynamic_chunks_max": 0})
    assert err.value.response.status_code == 400
    assert "dynamic_chunks_max" in err.value.response.json()
    assert client.analyses.chunking_configuration.get(1).json() == own
    assert registry.get("synth").chunking.fixed_analysis_chunks == 1  # the model's unchanged
