"""``oasis-keda scaler serve``: the KEDA external scaler process."""

from __future__ import annotations

import asyncio

import click

from oasis_keda.cli import environ


@click.group()
def scaler() -> None:
    """The KEDA external scaler."""


@scaler.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="gRPC port [9090].")
@click.option("--host", default=None, help="Listen address [0.0.0.0].")
@click.option("--redis-url", default=None, help="Broker (default: OASIS_KEDA_REDIS_URL).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA bundle for client certificates: clients must present one (mTLS).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Prometheus metrics port [0: off].",
)
def serve(
    port: int | None,
    host: str | None,
    redis_url: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    metrics_port: int | None,
) -> None:
    """Serve externalscaler.ExternalScaler and grpc.health.v1 until SIGTERM."""
    from scaler.server import serve as run
    from scaler.settings import ScalerSettings

    try:
        settings = ScalerSettings.from_env(environ()).replace(
            port=port,
            host=host,
            redis_url=redis_url,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
            metrics_port=metrics_port,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    asyncio.run(run(settings))
