"""Prometheus metrics: one HTTP endpoint per process, off unless a port is given.

Each component defines its own metrics beside its code (``scaler.metrics``,
``task_controller.metrics``, ``worker.metrics``, ``oasis_keda.api.metrics``) on
prometheus_client's default registry; a process serves them with :func:`serve` when started
with ``--metrics-port``. The names all start with ``oasis_keda_``; docs/METRICS.md lists them.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

logger = logging.getLogger(__name__)


class MetricsServer:
    """A running metrics endpoint."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.port = int(server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(
    port: int | None, *, host: str = "0.0.0.0", what: str = "metrics"
) -> MetricsServer | None:
    """Serve this process's metrics on ``host:port`` (``None`` or 0: off)."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=host)
    running = MetricsServer(server)
    logger.info("%s on http://%s:%d/metrics", what, host, running.port)
    return running
