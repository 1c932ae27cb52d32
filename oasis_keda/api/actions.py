"""The one place the API hands generate / run / cancel requests to the task controller.

The controller owns status transitions, chunk planning and dispatch (OASIS_API.md section
5); the API only translates its refusals into DRF-style 400 bodies. Keeping the adapter
here means no route knows the controller's function names.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from oasis_keda.api.context import ApiContext
from oasis_keda.api.errors import NotFoundError, ServiceUnavailableError, ValidationFailedError

logger = logging.getLogger(__name__)

CONTROLLER_MODULE = "task_controller.requests"

#: API action path -> controller function name.
ACTIONS: dict[str, str] = {
    "generate_inputs": "generate_inputs",
    "run": "run",
    "generate_and_run": "generate_and_run",
    "cancel": "cancel",
    "cancel_analysis_run": "cancel",
    "cancel_generate_inputs": "cancel",
}


def _function(name: str) -> Callable[..., Any]:
    try:
        module = importlib.import_module(CONTROLLER_MODULE)
    except ModuleNotFoundError as exc:
        raise ServiceUnavailableError("The task controller is not installed.") from exc
    func = getattr(module, ACTIONS[name], None)
    if func is None:
        raise ServiceUnavailableError(f"The task controller has no {name!r} request.")
    result: Callable[..., Any] = func
    return result


def perform(ctx: ApiContext, name: str, analysis_id: int, *, options: Mapping[str, str]) -> None:
    """Ask the controller to do ``name`` for the analysis; refusals become 400, unknown 404."""
    from task_controller.errors import AnalysisNotFoundError, RequestError

    func = _function(name)
    try:
        func(analysis_id, settings=ctx.settings.core)
    except RequestError as exc:
        raise ValidationFailedError(
            {
                field: msg if isinstance(msg, list) else [str(msg)]
                for field, msg in exc.fields.items()
            }
        ) from exc
    except AnalysisNotFoundError as exc:
        raise NotFoundError() from exc
