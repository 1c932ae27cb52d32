"""Analysis copy, run progress and complex model data files through the official client.

Covers: a copy is a new NEW analysis with the same portfolio, model, settings and
chunking, named ``<name> - Copy`` unless the body names it, refused naming the field for
an unknown portfolio, 404 for an unknown analysis; ``run_progress`` in the platform's
words; the data file lists are empty and creating one is refused, naming why.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import redis

from oasis_keda.core.registry import Registry
from oasis_keda.runtime.synth import write_synthetic_model
from tests.integration.api_support import ApiServer, api_server_fixture  # noqa: F401

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


def test_analysis_copy_and_data_files(
    api_server: ApiServer, registry: Registry, synth_dir: Path
) -> None:
    from oasis_keda.runtime.synth import analysis_settings

    registry.register(
        "synth", supplier_id="OasisKeda", model_name="Synth", model_dir=str(synth_dir)
    )
    client = api_server.client()
    client.portfolios.create("p")
    client.portfolios.location_file.post(1, io.BytesIO(LOCATION_CSV), content_type="text/csv")
    client.analyses.create("a", 1, 1)
    client.analyses.settings.post(1, analysis_settings())
    client.analyses.chunking_configuration.post(1, {"fixed_analysis_chunks": 6})
    copied = client.analyses.copy(1)
    assert copied.status_code == 200, copied.text
    c = copied.json()
    assert (c["id"], c["name"], c["status"], c["portfolio"], c["model"]) == (
        2,
        "a - Copy",
        "NEW",
        1,
        1,
    )
    assert client.analyses.settings.get(2).json() == client.analyses.settings.get(1).json()
    assert client.analyses.chunking_configuration.get(2).json()["fixed_analysis_chunks"] == 6
    s = api_server.session()
    named = s.post(f"{api_server.url}/v2/analyses/1/copy/", json={"name": "b"}, timeout=5)
    assert named.json()["name"] == "b"
    bad = s.post(f"{api_server.url}/v2/analyses/1/copy/", json={"portfolio": 9}, timeout=5)
    assert bad.status_code == 400 and "portfolio" in bad.json(), bad.text
    assert s.post(f"{api_server.url}/v2/analyses/9/copy/", json={}, timeout=5).status_code == 404
    assert [a["id"] for a in client.analyses.get().json()] == [1, 2, 3]
    progress = client.analyses.run_progress.get(2).json()
    assert progress == {"Status": "0/0 gul stages complete", "eta": None}
    # complex model data files: none, and none can be made
    assert client.analyses.data_files(1).json() == []
    assert client.models.data_files(1).json() == []
    assert client.data_files.get().json() == []
    r = s.post(f"{api_server.url}/v2/data_files/", json={"file_description": "x"}, timeout=5)
    assert r.status_code == 400 and "not supported" in r.text, r.text
