"""A model's run options, loaded the way ``oasislmf model run`` loads them.

A model directory's ``oasislmf.json`` holds the options of the model's reference run:
allocation rules, the GUL engine, sample and event settings, intermediary file formats.
Its keys follow oasislmf's own rules, and those rules change between releases: old names
are renamed through oasislmf's compatibility profile (``ktools_alloc_rule_gul`` became
``kernel_alloc_rule_gul``), paths are relative to the file, the command line wins over the
file, and keys no step knows are reported and ignored. Rather than copy those rules, this
module runs oasislmf's own command-line machinery (``OasisComputationCommand.get_arguments``
over ``InputValues``) for the ``model run`` computation, with the paths of our run given as
command-line arguments. The result is the keyword arguments oasislmf's own run would hand
to each of its steps, and every step of ours gets them whole (see docs/EXACTNESS.md).

:func:`check_run_options` refuses at registration what oasislmf would fail on later, with
the key named: a value of the wrong type, a choice it does not know, an allocation rule
out of range (oasislmf's own range check), and the hooks the chunked pipeline does not run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from worker.errors import InputError

logger = logging.getLogger(__name__)

#: The computation whose options a model's config sets: oasislmf's end-to-end run.
RUN_COMPUTATION = "RunModel"
#: oasislmf's logger for configuration warnings (unknown keys).
_INPUTS_LOGGER = "oasislmf.utils.inputs"
#: Hooks of ``model run`` that the chunked pipeline does not run: refused, never dropped.
UNSUPPORTED_OPTIONS = (
    "exposure_pre_analysis_module",
    "post_file_gen_module",
    "pre_loss_module",
    "post_analysis_module",
)


class RunOptionsError(InputError):
    """The model's config holds an option oasislmf would refuse or we cannot run."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """oasislmf's step arguments for one run, and what it warned about loading them."""

    arguments: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def step_kwargs(self, **paths: Any) -> dict[str, Any]:
        """The arguments with some paths replaced, for one oasislmf step."""
        return {**self.arguments, **paths}


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    """oasislmf's configuration warnings, captured instead of printed."""
    seen: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage().strip())

    target = logging.getLogger(_INPUTS_LOGGER)
    handler = _Collect(level=logging.WARNING)
    saved = target.propagate
    target.addHandler(handler)
    target.propagate = False
    try:
        yield seen
    finally:
        target.removeHandler(handler)
        target.propagate = saved


def _command(computation: str) -> Any:
    from oasislmf.cli.command import OasisComputationCommand

    return types.new_class(
        f"{computation}Options",
        (OasisComputationCommand,),
        exec_body=lambda ns: ns.update({"computation_name": computation}),
    )


def load_run_options(
    config: Path | None, *, overrides: Mapping[str, Any] | None = None
) -> RunOptions:
    """The keyword arguments of ``oasislmf model run -C config`` with ``overrides`` given
    on its command line (our input and output paths)."""
    from oasislmf.manager import OasisManager

    command_cls = _command(RUN_COMPUTATION)
    parser = argparse.ArgumentParser(add_help=False)
    command_cls(argv=[]).add_args(parser)
    # no -C at all when there is no config: the parser's default is ./oasislmf.json
    args = parser.parse_args(["-C", str(config)] if config else [])
    if not config:
        args.config = None
    for name, value in (overrides or {}).items():
        setattr(args, name, value)
    method = getattr(OasisManager(), OasisManager.computation_name_to_method(RUN_COMPUTATION))
    with _captured_warnings() as seen:
        try:
            arguments = command_cls.get_arguments(args, method)
        except Exception as exc:  # oasislmf raises OasisException, JSON and OS errors
            raise RunOptionsError(f"model config {config}: {exc}") from exc
    return RunOptions(arguments=arguments, warnings=tuple(sorted(_warnings(seen))))


def _warnings(lines: list[str]) -> list[str]:
    """oasislmf's warnings, its list of unknown keys ("key : value") one message per key."""
    out = []
    for line in lines:
        if line.lower().startswith("warning: unknown option"):
            continue  # the heading of the list
        if match := re.fullmatch(r"(\w+) : .*", line):
            out.append(
                f"model option {match.group(1)!r} is not an option of `oasislmf model run`: "
                "ignored, as oasislmf ignores it"
            )
        else:
            out.append(line)
    return out


def registered_options(config: Path) -> RunOptions:
    """The options a model config sets on its own, checked: what registration shows and
    refuses. Input files and analysis settings come with each analysis, so the config's own
    are left out."""
    options = load_run_options(
        config,
        overrides={
            name: ""
            for name in (
                "oed_location_csv",
                "oed_accounts_csv",
                "oed_info_csv",
                "oed_scope_csv",
                "analysis_settings_json",
            )
        },
    )
    check_run_options(options)
    return options


def _params() -> dict[str, dict[str, Any]]:
    from oasislmf.manager import OasisManager

    return {p["name"]: p for p in OasisManager.computations_params[RUN_COMPUTATION]}


def _check_type(name: str, param: Mapping[str, Any], value: Any) -> None:
    from argparse import ArgumentTypeError

    from oasislmf.utils.inputs import str2bool

    kind = param.get("type")
    kind_name = getattr(kind, "__name__", "")
    if param.get("nargs") == "+":
        if not isinstance(value, list):
            raise RunOptionsError(f"model option {name!r} must be a list, got {value!r}")
        values = value
    else:
        values = [value]
    for item in values:
        if kind_name == "str2bool" and not isinstance(item, bool):
            try:
                str2bool(item)
            except ArgumentTypeError:
                raise RunOptionsError(
                    f"model option {name!r} must be true or false, got {item!r}"
                ) from None
        elif kind is int and (isinstance(item, bool) or not isinstance(item, int)):
            raise RunOptionsError(f"model option {name!r} must be an integer, got {item!r}")
        elif kind is float and (isinstance(item, bool) or not isinstance(item, int | float)):
            raise RunOptionsError(f"model option {name!r} must be a number, got {item!r}")
        choices = param.get("choices")
        if choices and item not in choices:
            raise RunOptionsError(
                f"model option {name!r} must be one of {', '.join(map(str, choices))}, got {item!r}"
            )


def check_run_options(options: RunOptions) -> None:
    """Refuse what oasislmf would refuse, or what the chunked pipeline cannot honour."""
    from oasislmf.computation.generate.losses import GenerateLossesBase

    params = _params()
    values = options.arguments
    for name, value in values.items():
        if value is None or name not in params:
            continue
        _check_type(name, params[name], value)
    for name in UNSUPPORTED_OPTIONS:
        if values.get(name):
            raise RunOptionsError(
                f"model option {name!r} names a hook that the chunked pipeline does not run; "
                "remove it from the model config"
            )
    resolved = types.SimpleNamespace(
        **{
            name: values.get(name) if values.get(name) is not None else param.get("default")
            for name, param in params.items()
        }
    )
    try:
        GenerateLossesBase._check_ktool_rules(resolved)  # oasislmf's own range check
    except Exception as exc:
        raise RunOptionsError(f"model config: {exc}") from exc


def effective_options(options: RunOptions) -> dict[str, Any]:
    """Every non-path option with the value the run uses (oasislmf's default if unset)."""
    params = _params()
    shown: dict[str, Any] = {}
    for name, param in sorted(params.items()):
        if param.get("is_path") or name in ("config", "verbose", "log_level", "log_format"):
            continue
        value = options.arguments.get(name)
        shown[name] = param.get("default") if value is None else value
    return shown
