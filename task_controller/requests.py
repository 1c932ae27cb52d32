"""Module-level request functions for callers that hold only :class:`Settings` (the REST API
adapter ``oasis_keda.api.actions`` looks them up by name). Each refusal raises
:class:`~task_controller.errors.RequestError` (``fields``: field -> message) before anything
is queued.
"""

from __future__ import annotations

import functools

from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import INPUTS, LOSSES
from task_controller.service import Controller


@functools.lru_cache(maxsize=4)
def controller_for(settings: Settings) -> Controller:
    from task_controller.app import make_controller

    return make_controller(settings)


def generate_inputs(analysis_id: int, *, settings: Settings) -> int:
    """POST generate_inputs: status -> INPUTS_GENERATION_QUEUED; returns the run number."""
    return controller_for(settings).request(analysis_id, INPUTS)


def run(analysis_id: int, *, settings: Settings) -> int:
    """POST run: status -> RUN_QUEUED (DYNAMIC loss chunking without an event count is
    refused here); returns the run number."""
    return controller_for(settings).request(analysis_id, LOSSES)


def generate_and_run(analysis_id: int, *, settings: Settings) -> int:
    """Generate inputs, then run losses as soon as the inputs are READY."""
    controller = controller_for(settings)
    controller.check_can_run_after_generate(analysis_id)
    return controller.request(analysis_id, INPUTS, options={"then_run": True})


def cancel(analysis_id: int, *, settings: Settings) -> list[str]:
    """Cancel the stage in progress: *_CANCELLED, queued and running sub-tasks revoked."""
    return controller_for(settings).cancel(analysis_id)
