"""``kubectl oasis``: the kubectl plugin (console script ``kubectl-oasis``).

kubectl runs any ``kubectl-<name>`` on PATH as ``kubectl <name>``. Like every plugin this
one talks to the cluster of the current kubeconfig context (``--context``, ``--kubeconfig``
and ``-n`` as in kubectl), through the official ``kubernetes`` client
(:mod:`oasis_keda.core.kube`), so exec credential plugins, oidc, client certificates,
``tls-server-name`` and ``HTTPS_PROXY`` work as they do for kubectl. The registry and queue state live in Redis and the desired
worker counts come from the scaler; both are reached through addresses the operator gives
(typically after ``kubectl port-forward``), because neither speaks HTTP/1.1 for the API
server's service proxy.

Commands: ``status`` (per model: strategy, queue state, desired workers, replicas, ready
pods, ScaledObject conditions, and notes in words), ``models``, ``scale-config``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import click
import redis

from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.errors import ConfigError, ModelNotFoundError, OasisKedaError
from oasis_keda.core.kube import KubeClient, from_kubeconfig
from oasis_keda.core.kube_errors import KubeApiError, KubeError
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import safe_url
from oasis_keda.kubectl.manifests import replica_bounds
from oasis_keda.kubectl.names import resource_name
from oasis_keda.kubectl.scaler_probe import ScalerEndpoint, ScalerReading, read_desired
from oasis_keda.kubectl.status import (
    build_rows,
    model_id_of,
    render_json,
    render_table,
    trigger_metadata,
)
from scaler.errors import ScalerError
from scaler.state import Snapshot, StateReader, make_client
from scaler.strategies import ModelState

WORKER_SELECTOR = "app.kubernetes.io/name=oasis-worker"
DEFAULT_NAMESPACE = "oasis"
REDIS_TIMEOUT_S = 5.0


@dataclasses.dataclass
class PluginContext:
    kubeconfig: str | None
    context: str | None
    namespace: str | None
    redis_url: str | None
    scaler: ScalerEndpoint | None
    output: str
    _kube: KubeClient | None = None

    def kube(self) -> KubeClient:
        if self._kube is None:
            env = dict(os.environ)
            if self.kubeconfig:
                env["KUBECONFIG"] = self.kubeconfig
            kube = from_kubeconfig(env, context=self.context, namespace=self.namespace)
            if not self.namespace and kube.namespace == "default":
                kube.namespace = DEFAULT_NAMESPACE
            self._kube = kube
        return self._kube

    def registry(self) -> Registry:
        if not self.redis_url:
            raise click.ClickException(
                "the registry lives in Redis: pass --redis-url or set OASIS_KEDA_REDIS_URL "
                "(e.g. after `kubectl port-forward svc/oasis-redis 6379:6379`)"
            )
        return Registry(redis.Redis.from_url(self.redis_url, socket_timeout=5))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="kubeconfig file(s).")
@click.option("--context", default=None, help="kubeconfig context (default: current).")
@click.option("-n", "--namespace", default=None, help="Namespace [default: context's, or oasis].")
@click.option("--redis-url", envvar="OASIS_KEDA_REDIS_URL", default=None, help="Registry Redis.")
@click.option(
    "--scaler",
    "scaler_address",
    envvar="OASIS_KEDA_SCALER_ADDRESS",
    default=None,
    help="host:port of the scaler (e.g. localhost:6000 after port-forward).",
)
@click.option("--scaler-ca", default=None, help="CA file when the scaler uses TLS.")
@click.option("--scaler-cert", default=None, help="Client certificate for scaler mTLS.")
@click.option("--scaler-key", default=None, help="Client key for scaler mTLS.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def cli(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    redis_url: str | None,
    scaler_address: str | None,
    scaler_ca: str | None,
    scaler_cert: str | None,
    scaler_key: str | None,
    output: str,
) -> None:
    """Operate oasis-keda on Kubernetes: status, models, scaling configuration."""
    endpoint = None
    if scaler_address:
        endpoint = ScalerEndpoint(
            address=scaler_address, ca_file=scaler_ca, cert_file=scaler_cert, key_file=scaler_key
        )
    ctx.obj = PluginContext(kubeconfig, context, namespace, redis_url, endpoint, output)


def _read_snapshot(redis_url: str) -> Snapshot:
    """Every model's configuration and live queue state, read as the scaler reads them."""

    async def read() -> Snapshot:
        client = make_client(redis_url, timeout_s=REDIS_TIMEOUT_S)
        try:
            return await StateReader(client, timeout_s=REDIS_TIMEOUT_S).read_all()
        finally:
            await client.aclose()

    return asyncio.run(read())


def _cluster_objects(pc: PluginContext) -> tuple[list[Any], list[Any], str]:
    kube = pc.kube()
    ns = kube.namespace
    deps = kube.list_deployments(ns, label_selector=WORKER_SELECTOR)
    try:
        sos = kube.list_scaled_objects(ns, label_selector=WORKER_SELECTOR)
    except KubeApiError as exc:
        if exc.status != 404:
            raise
        return deps, [], "KEDA is not installed in this cluster (no ScaledObject API)"
    return deps, sos, ""


def _readings(
    pc: PluginContext, ids: list[str], sos: list[Any], namespace: str
) -> dict[str, ScalerReading]:
    if pc.scaler is None:
        return {m: ScalerReading(None, "no --scaler address given", unreachable=False) for m in ids}
    by_model = {model_id_of(so): so for so in sos}
    channel = pc.scaler.channel()
    try:
        readings = {}
        for model_id in ids:
            so = by_model.get(model_id)
            metadata = trigger_metadata(so) if so else {"model": model_id}
            name = (so or {}).get("metadata", {}).get("name") or resource_name(model_id)
            reading = read_desired(
                channel,
                name=name,
                namespace=namespace,
                metadata=metadata,
                deadline_s=pc.scaler.deadline_s,
            )
            readings[model_id] = reading
            if reading.unreachable:  # one timeout is enough: do not wait once per model
                return dict.fromkeys(ids, reading)
        return readings
    finally:
        channel.close()


@cli.command()
@click.argument("model_ids", nargs=-1)
@click.pass_obj
def status(pc: PluginContext, model_ids: tuple[str, ...]) -> None:
    """Per model: strategy, queue state, desired/current workers, ScaledObject conditions."""
    notes: list[str] = []
    configs: dict[str, ScalingConfig] | None = None
    states: dict[str, ModelState] = {}
    limit: int | None = None
    if pc.redis_url:
        try:
            snapshot = _read_snapshot(pc.redis_url)
            configs = {m: v.config for m, v in snapshot.models.items()}
            states = {m: v.state for m, v in snapshot.models.items()}
            limit = snapshot.limit
        except (OasisKedaError, ScalerError) as exc:
            notes.append(f"registry unreachable at {safe_url(pc.redis_url)}: {exc}")
    else:
        notes.append("registry not read (no --redis-url): strategy and queue state unknown")
    try:
        deps, sos, keda_note = _cluster_objects(pc)
    except KubeError as exc:
        raise click.ClickException(f"cannot read the cluster: {exc}") from exc
    if keda_note:
        notes.append(keda_note)
    known = set(configs or {}) | {model_id_of(o) for o in deps + sos} - {None}
    unknown = [m for m in model_ids if m not in known]
    if unknown:
        raise click.ClickException(
            f"model(s) unknown: {', '.join(unknown)} (not in the registry, no Deployment "
            f"or ScaledObject in namespace {pc.kube().namespace})"
        )
    ids = sorted(m for m in known if isinstance(m, str) and (not model_ids or m in model_ids))
    readings = _readings(pc, ids, sos, pc.kube().namespace)
    rows = build_rows(
        configs=configs,
        states=states,
        deployments=deps,
        scaled_objects=sos,
        readings=readings,
        global_limit=limit,
    )
    rows = [r for r in rows if r.model_id in ids]
    unreachable = next((r for r in readings.values() if r.unreachable), None)
    if unreachable is not None and pc.scaler is not None:
        notes.append(
            f"scaler unreachable at {pc.scaler.address} ({unreachable.error}); KEDA serves each "
            "ScaledObject's fallback after failureThreshold errors"
        )
    if pc.output == "json":
        click.echo(render_json(rows, global_limit=limit), nl=False)
    else:
        click.echo(render_table(rows, global_limit=limit, registry_note="\n".join(notes)), nl=False)


@cli.command()
@click.pass_obj
def models(pc: PluginContext) -> None:
    """Registered models and their scaling configuration."""
    registry = pc.registry()
    try:
        records = registry.list()
    except redis.RedisError as exc:
        msg = f"registry unreachable at {safe_url(pc.redis_url or '')}: {exc}"
        raise click.ClickException(msg) from exc
    finally:
        registry.client.close()
    if pc.output == "json":
        click.echo(json.dumps([r.summary() for r in records], indent=2, sort_keys=True))
        return
    rows = [("MODEL", "PK", "QUEUE", "STRATEGY", "MIN", "MAX", "FIXED", "CHUNKS/WORKER")]
    for r in records:
        s = r.scaling
        rows.append(
            (
                r.model_id,
                str(r.pk),
                r.queue,
                s.scaling_strategy.value,
                str(s.worker_count_min),
                str(s.worker_count_max),
                str(s.worker_count_fixed),
                str(s.chunks_per_worker),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not records:
        click.echo("(no models registered)")


@cli.command("scale-config")
@click.argument("model_id")
@click.option(
    "--set",
    "changes",
    default=None,
    help="JSON fields to change, e.g. '{\"worker_count_max\": 4}'.",
)
@click.pass_obj
def scale_config(pc: PluginContext, model_id: str, changes: str | None) -> None:
    """Show, or change with --set, a model's scaling configuration."""
    registry = pc.registry()
    try:
        if changes is None:
            config = registry.get(model_id).scaling
        else:
            try:
                parsed = json.loads(changes)
            except ValueError as exc:
                raise click.ClickException(f"--set is not valid JSON: {exc}") from exc
            config = registry.set_scaling(model_id, parsed)
    except ModelNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    except ConfigError as exc:
        raise click.ClickException(f"refused, nothing changed: {exc}") from exc
    except redis.RedisError as exc:
        msg = f"registry unreachable at {safe_url(pc.redis_url or '')}: {exc}"
        raise click.ClickException(msg) from exc
    finally:
        registry.client.close()
    click.echo(json.dumps(config.to_json_dict(), indent=2, sort_keys=True))
    if changes is not None:
        _check_bounds(pc, model_id, config)


def _check_bounds(pc: PluginContext, model_id: str, config: ScalingConfig) -> None:
    """Say when the deployed ScaledObject's min/max no longer match the configuration."""
    try:
        kube = pc.kube()
        so = kube.get_scaled_object(kube.namespace, resource_name(model_id))
    except KubeError as exc:
        click.echo(f"(ScaledObject not checked: {exc})", err=True)
        return
    spec: Mapping[str, Any] = so.get("spec") or {}
    low, high = replica_bounds(config)
    have = (spec.get("minReplicaCount", 0), spec.get("maxReplicaCount"))
    if have != (low, high):
        click.echo(
            f"ScaledObject has min/max {have[0]}/{have[1]}, configuration says {low}/{high}: "
            f"oasis-keda manifests model {model_id} | kubectl apply -f -",
            err=True,
        )


def main() -> None:
    cli(prog_name="kubectl oasis")
