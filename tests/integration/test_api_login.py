"""The official ``oasislmf api`` CLI's login against our server, without a login file.

The CLI tries the default user, then a ``client_id``/``client_secret`` login, then asks
for credentials on standard input. It moves on from a failed try only on a 401, or a 400
whose message says the flow is disabled. Covers: the client_id try is answered 400 with
"flow is disabled"; the CLI, with credentials other than its defaults typed on standard
input, logs in and lists the server's models.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from tests.integration.api_support import PASSWORD, USER, ApiServer, api_server_fixture  # noqa: F401
from tests.integration.piwind_api import run_cli


def test_client_id_login_says_the_flow_is_disabled(api_server: ApiServer) -> None:
    r = requests.post(
        f"{api_server.url}/access_token/",
        json={"client_id": "oasis-service", "client_secret": "x"},
        timeout=5,
    )
    assert r.status_code == 400, r.text
    assert "flow is disabled" in r.text.lower(), r.text
    # the default user is not this server's: 401, so the CLI tries the next flow
    r = requests.post(
        f"{api_server.url}/access_token/",
        json={"username": "admin", "password": "password"},
        timeout=5,
    )
    assert r.status_code == 401, r.text


def test_official_cli_asks_for_credentials(api_server: ApiServer, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "oasislmf"),
        *("api", "list", "--server-url", api_server.url),
    ]
    # auth type menu (1: simple), user name, password
    code, output = run_cli(command, tmp_path, stdin=f"1\n{USER}\n{PASSWORD}\n", timeout=120)
    assert code == 0, output
    assert "Authentication Required" in output, output
    assert "Models" in output or "models" in output.lower(), output
