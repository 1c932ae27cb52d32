"""``oasis-keda models``: register models and manage their scaling and chunking.

A refused configuration exits non-zero with a message naming each bad field, and leaves
the stored configuration unchanged (the registry validates before it writes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import redis

from oasis_keda.cli import environ
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.model_dir import CONFIG_NAME, ModelDirError, read_model_dir
from oasis_keda.core.registry import ModelRecord, Registry, RegistryStore
from oasis_keda.core.settings import Settings
from worker.run_options import RunOptions, RunOptionsError, effective_options, registered_options

redis_url_option = click.option(
    "--redis-url", default=None, help="Registry Redis (default: OASIS_KEDA_REDIS_URL)."
)


def store_for(settings: Settings) -> RegistryStore:
    """The registry's copy in the records database of ``settings``."""
    from oasis_keda.core.store import make_engine, make_session_factory

    return RegistryStore(make_session_factory(make_engine(settings.effective_database_url)))


def registry_for(redis_url: str | None) -> Registry:
    """The registry over Redis and the records database (every change is written to both)."""
    settings = Settings.from_env(environ()).replace(redis_url=redis_url)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return Registry(client, store_for(settings))


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def config_error_message(what: str, exc: ConfigError) -> str:
    fields = "; ".join(f"{name}: {msg}" for name, msg in exc.fields.items())
    return f"{what} refused (stored configuration unchanged): {fields}"


def parse_json_object(raw: str, option: str) -> Mapping[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"{option}: invalid JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"{option}: must be a JSON object, got {type(data).__name__}")
    return data


@click.group()
def models() -> None:
    """Register models and show or change their configurations."""


@models.command("register")
@click.argument("model_id")
@click.option("--queue", default=None, help="Celery queue (default: derived from MODEL_ID).")
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="oasislmf model directory; supplier, name and version default to its identity.",
)
@click.option("--supplier", default=None, help="Supplier id.")
@click.option("--name", default=None, help="Model name.")
@click.option("--version", "version_id", default=None, help="Model version.")
@redis_url_option
def register(
    model_id: str,
    queue: str | None,
    model_dir: Path | None,
    supplier: str | None,
    name: str | None,
    version_id: str | None,
    redis_url: str | None,
) -> None:
    """Register MODEL_ID (or update its metadata; configurations are kept)."""
    directory: str | None = None
    if model_dir is not None:
        try:
            found = read_model_dir(model_dir)
        except ModelDirError as exc:
            fail(f"--model-dir {model_dir}: {exc}")
        directory = str(found.root)
        for warning in _run_options(found.config_path).warnings:
            click.echo(f"warning: {warning}", err=True)
        supplier = supplier or found.supplier_id
        name = name or found.model_name
        version_id = version_id or found.version_id
    try:
        record = registry_for(redis_url).register(
            model_id,
            queue=queue,
            supplier_id=supplier,
            model_name=name,
            version_id=version_id,
            model_dir=directory,
        )
    except ConfigError as exc:
        fail(config_error_message("registration", exc))
    click.echo(f"registered {record.model_id!r} on queue {record.queue!r}")


def _run_options(config: Path) -> RunOptions:
    """The model config's run options as oasislmf loads them; exits naming a bad key."""
    for noisy in ("ods_tools", "numexpr"):  # their INFO lines say nothing a user asked for
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return registered_options(config)
    except RunOptionsError as exc:
        fail(f"--model-dir {config.parent}: {exc}")


def _get(registry: Registry, model_id: str) -> ModelRecord:
    try:
        return registry.get(model_id)
    except ModelNotFoundError as exc:
        fail(str(exc))


@models.command("show")
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only format).")
@redis_url_option
def show(model_id: str, as_json: bool, redis_url: str | None) -> None:
    """Print a model's id, queue, both configurations and its effective run options."""
    record = _get(registry_for(redis_url), model_id)
    summary = record.summary()
    if record.model_dir:
        options = _run_options(Path(record.model_dir) / CONFIG_NAME)
        summary["run_options"] = effective_options(options)
        summary["run_option_warnings"] = list(options.warnings)
    print_json(summary)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_url_option
def list_models(as_json: bool, redis_url: str | None) -> None:
    """List registered models."""
    records = registry_for(redis_url).list()
    if as_json:
        print_json([r.summary() for r in records])
        return
    if not records:
        click.echo("no models registered")
    for r in records:
        click.echo(f"{r.model_id}\tqueue={r.queue}\tstrategy={r.scaling.scaling_strategy.value}")


def _config_command(
    kind: str, get: Callable[[ModelRecord], Any], set_: Callable[..., Any]
) -> Callable[[str, str | None, str | None], None]:
    def command(model_id: str, set_json: str | None, redis_url: str | None) -> None:
        registry = registry_for(redis_url)
        if set_json is None:
            print_json(get(_get(registry, model_id)).to_json_dict())
            return
        changes = parse_json_object(set_json, "--set")
        try:
            new = set_(registry, model_id, changes)
        except ModelNotFoundError as exc:
            fail(str(exc))
        except ConfigError as exc:
            fail(config_error_message(f"{kind} configuration", exc))
        print_json(new.to_json_dict())

    return command


def _add_config_command(kind: str, attr: str, setter: str) -> None:
    body = _config_command(
        kind,
        lambda record: getattr(record, attr),
        lambda registry, model_id, changes: getattr(registry, setter)(model_id, changes),
    )
    body.__doc__ = (
        f"Print MODEL_ID's {kind} configuration, or change it with --set JSON "
        "(only the given fields change)."
    )
    decorated = redis_url_option(
        click.option("--set", "set_json", default=None, metavar="JSON", help="Fields to change.")(
            click.argument("model_id")(body)
        )
    )
    models.command(kind)(decorated)


_add_config_command("scaling", "scaling", "set_scaling")
_add_config_command("chunking", "chunking", "set_chunking")
