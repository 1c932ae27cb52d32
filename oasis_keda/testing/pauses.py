"""Pauses at the points where a test kills a process: after a sub-task's work (worker) and
before a dispatch (controller), each asked for by a request option (see
:mod:`oasis_keda.testing`).

The sub-task pause wraps every step body, so it runs after the body returned and before the
worker records the sub-task COMPLETED and acknowledges its message: a worker killed then
leaves a chunk whose output exists but whose message is unacked. The dispatch pause runs in
the controller's main task, with its lease held, before anything is planned.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oasis_keda.core.stages import SPECS, Job
from worker.tasks import BODIES, job_and_id

logger = logging.getLogger(__name__)


def pause_after(job: Job, slug: str) -> None:
    """Hold the sub-task ``slug`` for ``options["pause_after_s"][slug]`` seconds, with a
    ``.paused-<slug>`` marker in the run directory while it holds."""
    seconds = float((job["options"].get("pause_after_s") or {}).get(slug, 0))
    if seconds <= 0:
        return
    marker = Path(job["run_root"]) / f".paused-{slug}"
    marker.write_text(str(seconds))
    logger.info("%s: pausing %s s after its work (test hook)", slug, seconds)
    time.sleep(seconds)
    marker.unlink(missing_ok=True)


def _pausing(step_slug: str, is_chunk: bool, body: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = body(*args, **kwargs)
        job, _subtask_id = job_and_id(args)
        # A chunk's slug carries its index (the third argument), as its record's does.
        slug = f"{step_slug}-{args[2]}" if is_chunk and len(args) >= 3 else step_slug
        pause_after(job, slug)
        return result

    return run


def pausing_bodies() -> dict[str, Callable[..., Any]]:
    """Every registered step body, wrapped to pause after its work when asked to."""
    chunk_slugs = {spec.chunk.slug for spec in SPECS.values()}
    return {slug: _pausing(slug, slug in chunk_slugs, body) for slug, body in list(BODIES.items())}


def dispatch_pause(analysis_id: int, options: dict[str, Any]) -> None:
    """Hold the main task ``options["dispatch_pause_s"]`` seconds before its dispatch."""
    pause_s = float(options.get("dispatch_pause_s", 0))
    if pause_s > 0:
        logger.info("dispatch of analysis %s paused %s s (test hook)", analysis_id, pause_s)
        time.sleep(pause_s)
