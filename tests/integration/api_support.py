"""Test support for the API suites: a real uvicorn server on a free port in a thread.

Not a test module: ``test_api_*.py`` import the fixtures they need from here.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from oasis_keda.api import ApiSettings, create_app
from oasis_keda.core.settings import Settings

USER = "tester"
PASSWORD = "s3cret-pass"
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class ApiServer:
    url: str
    settings: ApiSettings
    server: uvicorn.Server
    thread: threading.Thread

    def token(self, user: str = USER, password: str = PASSWORD) -> str:
        r = requests.post(
            f"{self.url}/access_token/", json={"username": user, "password": password}, timeout=10
        )
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token

    def session(self) -> requests.Session:
        s = requests.Session()
        s.headers["authorization"] = f"Bearer {self.token()}"
        return s

    def client(self, **kwargs: Any) -> Any:
        from oasislmf.platform_api.client import APIClient

        options: dict[str, Any] = {"username": USER, "password": PASSWORD} | kwargs
        return APIClient(api_url=self.url, **options)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(settings: ApiSettings) -> ApiServer:
    port = free_port()
    settings = settings.replace(port=port, host="127.0.0.1")
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("API server did not start")
        time.sleep(0.02)
    return ApiServer(
        url=f"http://127.0.0.1:{port}", settings=settings, server=server, thread=thread
    )


def api_settings(redis_url: str, storage_dir: Path, **changes: Any) -> ApiSettings:
    core = Settings(redis_url=redis_url, storage_dir=storage_dir)
    return ApiSettings(core=core, user=USER, password=PASSWORD, **changes)


@pytest.fixture(name="api_server")
def api_server_fixture(redis_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    server = start_server(api_settings(redis_url, tmp_path / "storage"))
    try:
        yield server
    finally:
        server.stop()
