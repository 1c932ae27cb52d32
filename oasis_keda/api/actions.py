"""The one place the API hands generate / run / cancel requests to the task controller.

The controller owns status transitions, chunk planning and dispatch: it refuses a request
the analysis's status does not allow (inputs may be generated from any status but a stage
in progress, losses run once inputs are READY or after an earlier run ended), and one it
could not plan. The API only translates those refusals into DRF-style 400 bodies. Keeping
the adapter here means no route knows the controller's functions. The controller is
imported on the first action, not with the API, so the API starts without Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from oasis_keda.api.context import ApiContext
from oasis_keda.api.errors import NotFoundError, ValidationFailedError
from oasis_keda.core.settings import Settings

logger = logging.getLogger(__name__)

#: API action path -> the task controller request it makes
#: (a function of :mod:`task_controller.requests`).
ACTIONS: dict[str, str] = {
    "generate_inputs": "generate_inputs",
    "run": "run",
    "generate_and_run": "generate_and_run",
    "cancel": "cancel",
    "cancel_analysis_run": "cancel",
    "cancel_generate_inputs": "cancel",
}


def _call(name: str, analysis_id: int, settings: Settings) -> None:
    from task_controller import requests

    match ACTIONS[name]:
        case "generate_inputs":
            requests.generate_inputs(analysis_id, settings=settings)
        case "run":
            requests.run(analysis_id, settings=settings)
        case "generate_and_run":
            requests.generate_and_run(analysis_id, settings=settings)
        case "cancel":
            requests.cancel(analysis_id, settings=settings)


def perform(ctx: ApiContext, name: str, analysis_id: int, *, options: Mapping[str, str]) -> None:
    """Ask the controller to do ``name`` for the analysis; refusals become 400, unknown 404."""
    from task_controller.errors import AnalysisNotFoundError, RequestError

    try:
        _call(name, analysis_id, ctx.settings.core)
    except RequestError as exc:
        raise ValidationFailedError(
            {
                field: msg if isinstance(msg, list) else [str(msg)]
                for field, msg in exc.fields.items()
            }
        ) from exc
    except AnalysisNotFoundError as exc:
        raise NotFoundError() from exc
