"""``oasis-keda manifests``: Kubernetes objects for registered models.

Adding a model to a cluster is one pipe: ``oasis-keda manifests model MODEL_ID |
kubectl apply -f -`` prints the model's worker Deployment and ScaledObject from its
registered scaling configuration (see :mod:`oasis_keda.kubectl.manifests`).
"""

from __future__ import annotations

import click
import redis

from oasis_keda.cli import environ
from oasis_keda.core.errors import ModelNotFoundError
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings, safe_url
from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings
from oasis_keda.kubectl.manifests import model_manifests, to_yaml

_DEFAULTS = WorkerManifestSettings()


@click.group()
def manifests() -> None:
    """Print Kubernetes manifests (YAML) for registered models."""


@manifests.command("model")
@click.argument("model_id")
@click.option("--redis-url", default=None, help="Registry Redis (default OASIS_KEDA_REDIS_URL).")
@click.option("-n", "--namespace", default=_DEFAULTS.namespace, show_default=True)
@click.option("--image", default=_DEFAULTS.image, show_default=True)
@click.option(
    "--image-pull-policy",
    default=_DEFAULTS.image_pull_policy,
    show_default=True,
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
)
@click.option(
    "--scaler-address",
    default="",
    help="host:port of the scaler [default: oasis-scaler.<namespace>.svc.cluster.local:6000]",
)
@click.option("--polling-interval", default=_DEFAULTS.polling_interval_s, show_default=True)
@click.option("--cooldown-period", default=_DEFAULTS.cooldown_period_s, show_default=True)
@click.option(
    "--termination-grace-period",
    default=_DEFAULTS.termination_grace_period_s,
    show_default=True,
    help="Seconds a worker gets to finish its chunk after SIGTERM.",
)
@click.option("--concurrency", default=_DEFAULTS.concurrency, show_default=True)
@click.option(
    "--trigger-auth",
    default="",
    help="TriggerAuthentication for mTLS to the scaler (e.g. oasis-scaler-mtls).",
)
def model(
    model_id: str,
    redis_url: str | None,
    namespace: str,
    image: str,
    image_pull_policy: str,
    scaler_address: str,
    polling_interval: int,
    cooldown_period: int,
    termination_grace_period: int,
    concurrency: int,
    trigger_auth: str,
) -> None:
    """Worker Deployment and ScaledObject of MODEL_ID, for `kubectl apply -f -`."""
    try:
        options = WorkerManifestSettings(
            namespace=namespace,
            image=image,
            image_pull_policy=image_pull_policy,
            scaler_address=scaler_address,
            polling_interval_s=polling_interval,
            cooldown_period_s=cooldown_period,
            termination_grace_period_s=termination_grace_period,
            concurrency=concurrency,
            trigger_authentication=trigger_auth,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = Settings.from_env(environ()).replace(redis_url=redis_url)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        record = Registry(client).get(model_id)
    except ModelNotFoundError as exc:
        raise click.ClickException(f"{exc}; register it first (oasis-keda models ...)") from exc
    except redis.RedisError as exc:
        url = safe_url(settings.redis_url)
        raise click.ClickException(f"cannot read the registry at {url}: {exc}") from exc
    finally:
        client.close()
    click.echo(to_yaml(model_manifests(record, options)), nl=False)
