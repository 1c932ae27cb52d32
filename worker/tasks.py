"""Thin Celery tasks: record the sub-task, capture its log, call the stage, apply the retry
policy. The step bodies are :mod:`worker.steps`'s; the oasislmf work itself lives in
:mod:`worker.lookup` and :mod:`worker.losses`.

Every task of a stage gets the stage's :class:`~oasis_keda.core.stages.Job` and its sub-task id.
Steps before the chunks are ``(job, subtask_id)``, chunks ``(job, subtask_id, k)`` (k
1-based), steps after the chunks ``(previous_result, job, subtask_id)``; results are file
paths (deterministic, so a re-run chunk reports the same result to the chord).

Error policy: an :class:`~worker.errors.InputError` fails the sub-task at once (the analysis
ends in ``*_ERROR`` with the message in the sub-task's ``error_log``); a
:class:`~worker.errors.TransientError` is retried ``MAX_RETRIES`` times with a backoff; any
other exception once (``UNEXPECTED_RETRIES``), then fails with its traceback. A sub-task
whose run is over (cancelled, failed, superseded) is skipped.

Each registered stage's steps become tasks when an app is made, with their bodies looked up
by step slug in :data:`BODIES`; only the test hooks add bodies (:func:`register_bodies`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from celery import Celery, Task
from celery.exceptions import Ignore, Retry

from oasis_keda.core import keys
from oasis_keda.core.stages import (
    INPUTS,
    LOSSES,
    LOSSES_SPEC,
    REQUEST_RUN_TASK,
    SPECS,
    TASK_PREFIX,
    Job,
    StageSpec,
)
from worker import metrics, steps, warmup
from worker.errors import InputError, TransientError

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
#: Retries of an exception that is neither an InputError nor a TransientError.
UNEXPECTED_RETRIES = 1
RETRY_BACKOFF_MAX_S = 30
#: Longest output log kept in a sub-task record (head and tail are kept).
LOG_MAX_CHARS = 1_000_000
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """Capture logging (INFO and up) and stdout/stderr of the stage into one buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


class SubTaskTask(Task):  # type: ignore[misc]
    """Base of every sub-task: records, log capture, retry policy."""

    Request = "worker.signals:LeasedRequest"
    acks_late = True
    reject_on_worker_lost = True
    max_retries = MAX_RETRIES
    #: ``finish`` tasks complete the stage themselves (in one transaction with the analysis).
    finishes_stage = False
    counts_events = False
    is_chunk = False
    step_slug = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        job, subtask_id = job_and_id(args)
        recorder = self.app.oasis.recorder
        request = self.request
        if not recorder.begin(
            subtask_id,
            task_id=request.id,
            worker=request.hostname or "",
            retries=request.retries,
        ):
            logger.info("sub-task %s skipped: its run is over", subtask_id)
            raise Ignore()
        started = time.perf_counter()
        outcome = "failed"
        try:
            with captured_log() as buffer:
                try:
                    logger.info(
                        "%s started (analysis %s, run %s)",
                        self.name,
                        job["analysis_id"],
                        job["run_number"],
                    )
                    waited = warmup.current().wait_for_step(self.step_slug)
                    if waited >= 0.01:
                        logger.info("waited %.2f s for the worker's warm-up", waited)
                    result = self.run(*args, **kwargs)
                    outcome = "completed"
                    logger.info("%s completed", self.name)
                except (Retry, Ignore) as exc:
                    outcome = "retried" if isinstance(exc, Retry) else "ignored"
                    raise
                except InputError as exc:  # deterministic: fails at once with its message
                    self._fail(subtask_id, exc, _bounded(buffer.getvalue()))
                    raise
                except TransientError as exc:
                    if request.retries < self.max_retries:
                        countdown = min(2**request.retries, RETRY_BACKOFF_MAX_S)
                        outcome = "retried"
                        recorder.retry(subtask_id, message=str(exc), retries=request.retries + 1)
                        raise self.retry(exc=exc, countdown=countdown) from exc
                    self._fail(subtask_id, exc, _bounded(buffer.getvalue()))
                    raise
                except Exception as exc:
                    # Unclassified (a library's own error, e.g. a numba cache race): one retry,
                    # then it fails with its traceback.
                    if request.retries < UNEXPECTED_RETRIES:
                        message = f"{type(exc).__name__}: {exc}"
                        outcome = "retried"
                        recorder.retry(subtask_id, message=message, retries=request.retries + 1)
                        raise self.retry(exc=exc, countdown=1) from exc
                    self._fail(subtask_id, exc, _bounded(buffer.getvalue()))
                    raise
        finally:
            metrics.observe(self.name, outcome, time.perf_counter() - started)
        if not self.finishes_stage:
            recorder.complete(
                subtask_id, output_log=_bounded(buffer.getvalue()), events_share=self.counts_events
            )
        else:
            files = {k: Path(v) for k, v in (result or {}).items()}
            then_run = job["stage"] == INPUTS and bool(job["options"].get("then_run"))
            finished = recorder.finish(
                subtask_id,
                output_log=_bounded(buffer.getvalue()),
                files=files,
                next_stage=LOSSES if then_run else None,
            )
            if finished and then_run:
                self.app.send_task(
                    REQUEST_RUN_TASK,
                    args=(job["analysis_id"],),
                    queue=keys.CONTROLLER_QUEUE,
                    ignore_result=True,
                )
        return result

    def _fail(self, subtask_id: int, exc: BaseException, output_log: str) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, InputError):
            error_log = f"{exc}\n"
        else:
            error_log = f"{message}\n\n{traceback.format_exc()}"
        revoke = self.app.oasis.recorder.fail(
            subtask_id, error_log=error_log, output_log=output_log
        )
        logger.error("sub-task %s failed: %s", subtask_id, message)
        if revoke:
            with contextlib.suppress(Exception):
                self.app.control.revoke(revoke, terminate=True)


def _bounded(log: str) -> str:
    """A log as stored: head and tail of a very long one (the records DB is no log store)."""
    if len(log) <= LOG_MAX_CHARS:
        return log
    half = LOG_MAX_CHARS // 2
    return f"{log[:half]}\n[... {len(log) - 2 * half} characters left out ...]\n{log[-half:]}"


def job_and_id(args: tuple[Any, ...]) -> tuple[Job, int]:
    """The job and sub-task id of a step's arguments: ``(job, id, ...)`` or
    ``(previous_result, job, id)``."""
    if args and isinstance(args[0], dict) and "analysis_id" in args[0]:
        job, subtask_id = args[0], args[1]
    else:
        job, subtask_id = args[1], args[2]
    return cast(Job, job), int(subtask_id)


#: Step bodies by step slug: every stage's steps must have one when the app is made.
BODIES: dict[str, Callable[..., Any]] = dict(steps.BODIES)


def register_bodies(bodies: Mapping[str, Callable[..., Any]]) -> None:
    """Add or replace step bodies by slug, for the apps this process makes from now on.
    Production adds none: the test hooks add their stage's and wrap the others
    (docs/CONTROLLER.md)."""
    BODIES.update(bodies)


def register_tasks(app: Celery) -> None:
    """Register every step of every registered stage as a task of ``app``."""
    for spec in SPECS.values():
        _register_spec(app, spec)


def _register_spec(app: Celery, spec: StageSpec) -> None:
    last = spec.after[-1]
    for step in (*spec.before, spec.chunk, *spec.after):
        body = BODIES[step.slug]
        assert step.task == TASK_PREFIX + body.__name__
        app.task(
            name=step.task,
            base=SubTaskTask,
            finishes_stage=step is last,
            counts_events=step is LOSSES_SPEC.chunk,
            is_chunk=step is spec.chunk,
            step_slug=step.slug,
            shared=False,
        )(body)
