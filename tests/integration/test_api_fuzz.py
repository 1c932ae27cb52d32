"""Property-based fuzz of the API from its own OpenAPI document (/v2/schema/).

Schemathesis generates requests (valid and invalid bodies, query strings, path ids) for
every operation the document lists and sends them, with a valid token, to a real server
over a small seeded data set (a model with a model directory, a portfolio with a location
file, an analysis with settings, a sub-task with a log). The property: no answer is a 5xx.
Examples per operation are bounded so that the whole fuzz runs in well under a minute.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import hypothesis
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from oasis_keda.core.registry import Registry
from oasis_keda.core.store import SubTask, make_engine, make_session_factory
from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401

EXAMPLES_PER_OPERATION = 6
LOCATION_CSV = (
    b"PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
    b"1,A1,L1,GB,WTC,GBP,51.5,-0.5\n"
)


def _seed(server: ApiServer, redis_client: redis.Redis, tmp_path: Path) -> None:
    model_dir = write_synthetic_model(tmp_path / "model", locations=3, events=5, seed=0).root
    Registry(redis_client).register(
        "synth",
        supplier_id="OasisKeda",
        model_name="Synth",
        version_id="1",
        model_dir=str(model_dir),
    )
    client = server.client()
    client.portfolios.create("p")
    client.portfolios.location_file.post(1, io.BytesIO(LOCATION_CSV), content_type="text/csv")
    client.analyses.create("a", 1, 1)
    client.analyses.settings.post(1, analysis_settings())
    engine = make_engine(server.settings.core.effective_database_url)
    with make_session_factory(engine)() as session:
        session.add(
            SubTask(
                analysis_id=1,
                run_number=0,
                stage="inputs",
                slug="collect-keys",
                name="Collect keys",
                task_id="t1",
                queue_name="q",
                output_log="ok",
            )
        )
        session.commit()
    engine.dispose()


def _narrow_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """The same document with path ids limited to the seeded ones (1..2), so the fuzz
    reaches existing records instead of answering 404 to almost every request."""
    doc = copy.deepcopy(doc)
    for item in doc["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param.get("in") == "path":
                    param["schema"] = {"type": "integer", "minimum": 1, "maximum": 2}
    return doc


def _fuzz(schema: Any, server: ApiServer, headers: dict[str, str]) -> tuple[int, list[str]]:
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation: Any = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @hsettings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=20)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}\n  {case.as_curl_command()}"
                )

        check()
    return operations, failures


def test_no_request_makes_the_server_fail(
    api_server: ApiServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    _seed(api_server, redis_client, tmp_path)
    headers = {"Authorization": f"Bearer {api_server.token()}"}
    doc = requests.get(f"{api_server.url}/v2/schema/", timeout=10).json()
    operations, failures = _fuzz(
        schemathesis.openapi.from_dict(_narrow_ids(doc)), api_server, headers
    )
    assert operations > 40
    more, more_failures = _fuzz(
        schemathesis.openapi.from_url(f"{api_server.url}/v2/schema/"), api_server, headers
    )
    assert more == operations
    failures += more_failures
    assert not failures, "\n".join(failures)
