"""The ``oasis-keda`` command line.

Subcommand groups live in their own modules and are imported only when used, so that
``oasis-keda models ...`` does not pay for importing oasislmf or gRPC.
"""

from __future__ import annotations

import importlib
import os

import click

# name -> "module:attribute" of a click command or group.
SUBCOMMANDS: dict[str, str] = {
    "models": "oasis_keda.cli.models:models",
    "settings": "oasis_keda.cli.settings_cmd:settings",
    "status": "oasis_keda.cli.status:status",
    "scaler": "oasis_keda.cli.scaler:scaler",
    "controller": "oasis_keda.cli.controller:controller",
    "worker": "oasis_keda.cli.worker:worker",
    "analyses": "oasis_keda.cli.analyses:analyses",
    "model": "oasis_keda.cli.model:model",
    "manifests": "oasis_keda.cli.manifests:manifests",
    "api": "oasis_keda.cli.api:api",
    "up": "oasis_keda.cli.up:up",
    "demo": "oasis_keda.cli.demo:demo",
    "simulate": "oasis_keda.cli.simulate:simulate",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not built yet
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    envvar="OASIS_KEDA_LOG_LEVEL",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Logging level (OASIS_KEDA_LOG_LEVEL).",
)
@click.option(
    "--test-hooks",
    is_flag=True,
    envvar="OASIS_KEDA_TEST_HOOKS",
    help="Load the test and benchmark hooks (the noop stage, pauses; see oasis_keda.testing), "
    "here and in the processes this one starts (OASIS_KEDA_TEST_HOOKS=1). Never in production.",
)
def cli(log_level: str, test_hooks: bool) -> None:
    """Autoscaling and chunked execution for Oasis LMF models on KEDA, Celery and Kubernetes."""
    from oasis_keda.core.logconfig import configure_logging

    configure_logging(log_level.upper())
    if test_hooks:
        # Before any subcommand makes its Celery app (the app registers the stages' tasks).
        from oasis_keda.testing import ENV_VAR, install

        install()
        os.environ[ENV_VAR] = "1"  # the processes this one starts load them too


def main() -> None:
    cli(prog_name="oasis-keda", auto_envvar_prefix=None)


#: ``--metrics-port`` of the controller, worker and API commands (the scaler's is a setting).
metrics_port_option = click.option(
    "--metrics-port",
    default=0,
    show_default=True,
    envvar="OASIS_KEDA_METRICS_PORT",
    type=click.IntRange(0, 65535),
    help="Prometheus metrics port (0: off; env OASIS_KEDA_METRICS_PORT).",
)


def environ() -> dict[str, str]:
    """The process environment, read at call time (never at import time)."""
    return dict(os.environ)


__all__ = ["cli", "environ", "main", "metrics_port_option"]
