"""``oasis-keda api serve``: run the Oasis-v2-compatible HTTP API under uvicorn.

Settings come from ``OASIS_KEDA_*`` (see :class:`oasis_keda.api.ApiSettings`); flags
override them. The well-known admin/password login is refused outside the local runtime
unless ``--insecure-default-user`` is given.
"""

from __future__ import annotations

import click

from oasis_keda.cli import environ, metrics_port_option


@click.group()
def api() -> None:
    """The HTTP API (Oasis platform v2 subset used by the oasislmf client)."""


@api.command()
@click.option(
    "--host", default=None, help="Listen address (default: OASIS_KEDA_API_HOST or 127.0.0.1)."
)
@click.option(
    "--port", type=int, default=None, help="Listen port (default: OASIS_KEDA_API_PORT or 8000)."
)
@click.option(
    "--insecure-default-user",
    is_flag=True,
    default=False,
    help="Allow the default admin/password login outside the local runtime.",
)
@click.option("--redis-url", default=None, help="Registry and broker Redis (OASIS_KEDA_REDIS_URL).")
@click.option("--storage-dir", default=None, help="Storage directory (OASIS_KEDA_STORAGE_DIR).")
@metrics_port_option
def serve(
    host: str | None,
    port: int | None,
    insecure_default_user: bool,
    redis_url: str | None,
    storage_dir: str | None,
    metrics_port: int,
) -> None:
    """Serve the API until interrupted."""
    from pathlib import Path

    import uvicorn

    from oasis_keda.api import ApiSettings, create_app
    from oasis_keda.api.errors import ApiConfigError

    try:
        settings = ApiSettings.from_env(environ())
        core = settings.core.replace(
            redis_url=redis_url, storage_dir=Path(storage_dir) if storage_dir else None
        )
        settings = settings.replace(
            core=core, host=host, port=port, insecure_default_user=insecure_default_user or None
        )
        settings.check_credentials_allowed()
    except (ApiConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    app = create_app(settings)
    from oasis_keda.core.metrics import serve as serve_metrics

    serve_metrics(metrics_port, host=settings.host, what="API metrics")
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, proxy_headers=True)


@api.command("hash-password")
@click.password_option("--password", help="The password to hash (prompted when not given).")
def hash_password(password: str) -> None:
    """Print an argon2 hash to use as OASIS_KEDA_API_PASSWORD (no plain password kept)."""
    from argon2 import PasswordHasher

    click.echo(PasswordHasher().hash(password))
