"""The scaler process: grpc.aio server, health service, TLS/mTLS, graceful shutdown.

Health (``grpc.health.v1``, service "" and ``externalscaler.ExternalScaler``) is
NOT_SERVING until the first successful Redis read, and again while Redis is unreachable;
a probe reads Redis every ``health_interval_s`` and RPC outcomes update it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from oasis_keda.core.errors import BrokerUnavailableError
from oasis_keda.core.metrics import MetricsServer
from oasis_keda.core.metrics import serve as serve_metrics
from scaler.activity import ActivityHub
from scaler.aiotools import stop_task
from scaler.deciding import Decider
from scaler.proto import externalscaler_pb2_grpc as pb_grpc
from scaler.service import ExternalScalerService
from scaler.settings import ScalerSettings
from scaler.state import StateReader, make_client

logger = logging.getLogger(__name__)

SERVICE_NAME = "externalscaler.ExternalScaler"


def server_credentials(settings: ScalerSettings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' PEM files; None for plaintext."""
    if not settings.tls_cert:
        return None
    key = Path(settings.tls_key).read_bytes()
    cert = Path(settings.tls_cert).read_bytes()
    ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


class ScalerServer:
    """One running scaler. ``await start()``, then ``port`` is bound; ``await stop()``."""

    def __init__(self, settings: ScalerSettings) -> None:
        self.settings = settings
        self.client = make_client(settings.redis_url, timeout_s=settings.redis_timeout_s)
        self.reader = StateReader(
            self.client,
            timeout_s=settings.redis_timeout_s,
            refresh_s=settings.snapshot_refresh_s,
            max_age_s=settings.snapshot_max_age_s,
        )
        self.decider = Decider(self.reader, start_allowance_s=settings.start_allowance_s)
        self.hub = ActivityHub(
            self.client,
            poll_interval_s=settings.poll_interval_s,
            recheck_interval_s=settings.recheck_interval_s,
            on_registry_change=self.reader.invalidate,
        )
        self.health = health.aio.HealthServicer()
        self.service = ExternalScalerService(self.decider, self.hub, on_redis=self._redis_ok)
        self.server = grpc.aio.server()
        self.port = 0
        self.metrics: MetricsServer | None = None
        self._serving: bool | None = None
        self._probe: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def _redis_ok(self, ok: bool) -> None:
        if ok == self._serving:
            return
        self._serving = ok
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if not ok:
            logger.warning("Redis unreachable: health NOT_SERVING, RPCs answer UNAVAILABLE")
        else:
            logger.info("Redis reachable: health SERVING")
        for name in ("", SERVICE_NAME):
            task = asyncio.ensure_future(self.health.set(name, status))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _probe_loop(self) -> None:
        # Ends on self._stopping, not only on cancel: redis-py can swallow a cancellation
        # that lands inside its connect, and the loop would then run on forever.
        while not self._stopping.is_set():
            try:
                await self.reader.ping()
                self._redis_ok(True)
            except BrokerUnavailableError as exc:
                logger.debug("health probe: %s", exc)
                self._redis_ok(False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.health_interval_s):
                    await self._stopping.wait()

    async def start(self) -> int:
        pb_grpc.add_ExternalScalerServicer_to_server(self.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        credentials = server_credentials(self.settings)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        await self.server.start()
        self.metrics = serve_metrics(
            self.settings.metrics_port, host=self.settings.host, what="scaler metrics"
        )
        await self.hub.start()
        self._probe = asyncio.create_task(self._probe_loop(), name="health-probe")
        logger.info(
            "scaler listening on %s:%d (%s)",
            self.settings.host,
            self.port,
            "mTLS" if self.settings.tls_client_ca else "TLS" if credentials else "plaintext",
        )
        return self.port

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.settings.grace_s if grace_s is None else grace_s
        self._stopping.set()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self._probe is not None:
            await stop_task(self._probe)
        logger.debug("stop: health")
        await self.health.enter_graceful_shutdown()
        logger.debug("stop: gRPC server")
        await self.server.stop(grace)
        logger.debug("stop: activity hub")
        await self.hub.stop()
        logger.debug("stop: Redis client")
        await self.client.aclose()
        await self.client.connection_pool.disconnect(inuse_connections=True)


async def serve(settings: ScalerSettings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = ScalerServer(settings)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    logger.info("shutting down (grace %.1f s)", settings.grace_s)
    await server.stop()
