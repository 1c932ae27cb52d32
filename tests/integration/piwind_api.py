"""Test support: PiWind served by our whole stack behind a real API server.

The task controller and one PiWind worker as ``oasis-keda`` subprocesses (``stack``), a
real Redis and records database, and a uvicorn API server in this process over the same
stores. PiWind is registered with ``oasis-keda models register``. Not a test module.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from oasis_keda.api import ApiSettings
from oasis_keda.cli import cli
from tests.integration.api_support import PASSWORD, USER, ApiServer, start_server
from tests.shared_data import PIWIND
from tests.stack_support import Stack, running_stack

MODEL = "piwind"
LOCATIONS = PIWIND / "tests" / "inputs" / "SourceLocOEDPiWind10.csv"
ACCOUNTS = PIWIND / "tests" / "inputs" / "SourceAccOEDPiWind.csv"
RI_INFO = PIWIND / "tests" / "inputs" / "SourceReinsInfoOEDPiWind.csv"
RI_SCOPE = PIWIND / "tests" / "inputs" / "SourceReinsScopeOEDPiWind.csv"
LOG_TAIL_CHARS = 4000


@dataclass
class ApiStack:
    """Controller and worker processes (``stack``) and the API server over their stores."""

    stack: Stack
    server: ApiServer

    def logs(self) -> str:
        return "\n".join(
            f"== {log.name}\n{log.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"
            for log in sorted(self.stack.tmp_path.glob("*.log"))
        )


@contextmanager
def piwind_api_stack(redis_url: str, tmp_path: Path) -> Iterator[ApiStack]:
    root = tmp_path / "stack"
    root.mkdir()
    with running_stack(redis_url, root) as stack:
        result = CliRunner().invoke(
            cli,
            ["models", "register", MODEL, "--model-dir", str(PIWIND)],
            env=stack.env,
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        stack.start_controller()
        stack.start_worker(MODEL)
        server = start_server(ApiSettings(core=stack.settings, user=USER, password=PASSWORD))
        try:
            yield ApiStack(stack, server)
        finally:
            server.stop()


def run_cli(
    command: list[str], cwd: Path, *, stdin: str | None = None, timeout: float = 1200.0
) -> tuple[int | None, str]:
    """Exit code (None on timeout) and the combined stdout/stderr of the command."""
    env = dict(os.environ)
    env.pop("OASIS_ENV_OVERRIDE", None)  # it would let OASIS_* variables beat our arguments
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            input=(stdin or "").encode(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            # no controlling terminal: getpass reads the password from stdin, not /dev/tty
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output or b""
        return None, output.decode(errors="replace") if isinstance(output, bytes) else output
    return proc.returncode, proc.stdout.decode(errors="replace")


def extract(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into
