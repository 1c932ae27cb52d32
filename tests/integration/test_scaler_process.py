"""``oasis-keda scaler serve`` as a real process: serves, then exits cleanly on SIGTERM.

Covers: flags and OASIS_KEDA_* environment reach the server; health SERVING; an RPC over
the socket; SIGTERM -> graceful shutdown with exit code 0; a half TLS configuration is a
usage error naming the flags.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from oasis_keda.runtime.embedded_redis import free_port
from tests.scaler_support import desired, register, scaler_stub, wait_serving

EXE = str(Path(sys.executable).parent / "oasis-keda")


async def test_serve_then_sigterm(redis_url: str, redis_client: redis.Redis) -> None:
    register(redis_client, "m")
    port = free_port()
    env = {**os.environ, "OASIS_KEDA_REDIS_URL": redis_url, "OASIS_KEDA_SCALER_GRACE_S": "1"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited in a loop
        [EXE, "scaler", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env
    )
    try:
        await wait_serving(port)
        async with scaler_stub(port) as stub:
            assert await desired(stub, "m") == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_half_tls_config_is_a_usage_error(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    result = subprocess.run(
        [EXE, "scaler", "serve", "--tls-cert", str(cert)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "tls_cert and tls_key" in result.stderr
