"""Thin Celery tasks: record the sub-task, capture its log, call the stage, apply the retry
policy. The oasislmf work itself lives in :mod:`worker.lookup` and :mod:`worker.losses`.

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
import json
import logging
import shutil
import tarfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from celery import Celery, Task
from celery.exceptions import Ignore, Retry

from oasis_keda.core import keys
from oasis_keda.core.model_dir import ModelDir, read_model_dir
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
from worker.errors import InputError, TransientError
from worker.run_options import RunOptions

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
        with captured_log() as buffer:
            try:
                logger.info(
                    "%s started (analysis %s, run %s)",
                    self.name,
                    job["analysis_id"],
                    job["run_number"],
                )
                result = self.run(*args, **kwargs)
                logger.info("%s completed", self.name)
            except (Retry, Ignore):
                raise
            except InputError as exc:  # deterministic: fails at once with its message
                self._fail(subtask_id, exc, _bounded(buffer.getvalue()))
                raise
            except TransientError as exc:
                if request.retries < self.max_retries:
                    countdown = min(2**request.retries, RETRY_BACKOFF_MAX_S)
                    recorder.retry(subtask_id, message=str(exc), retries=request.retries + 1)
                    raise self.retry(exc=exc, countdown=countdown) from exc
                self._fail(subtask_id, exc, _bounded(buffer.getvalue()))
                raise
            except Exception as exc:
                # Unclassified (a library's own error, e.g. a numba cache race): one retry,
                # then it fails with its traceback.
                if request.retries < UNEXPECTED_RETRIES:
                    message = f"{type(exc).__name__}: {exc}"
                    recorder.retry(subtask_id, message=message, retries=request.retries + 1)
                    raise self.retry(exc=exc, countdown=1) from exc
                self._fail(subtask_id, exc, _bounded(buffer.getvalue()))
                raise
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


# -- stage bodies ------------------------------------------------------------------------


def _model(job: Job) -> ModelDir:
    if not job["model_dir"]:
        raise InputError(f"model {job['model_id']!r} has no model directory registered")
    return read_model_dir(job["model_dir"])


def _settings(job: Job) -> dict[str, Any]:
    if not job["settings_file"]:
        return {}
    path = Path(job["settings_file"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"analysis settings {path} are unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"analysis settings {path} must hold a JSON object")
    return data


def _run(job: Job, part: str) -> Path:
    path = Path(job["run_root"]) / part
    path.mkdir(parents=True, exist_ok=True)
    return path


def _archive(directory: Path, target: Path) -> Path:
    """tar.gz of a directory, written atomically."""
    partial = target.with_name(f".{target.name}.partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    partial.replace(target)
    return target


def _generate_options(job: Job) -> RunOptions:
    from worker.lookup import generate_options

    if not job["location_file"]:
        raise InputError("the portfolio has no location file")
    if not job["settings_file"]:
        raise InputError("the analysis has no settings file")
    return generate_options(
        _model(job),
        location_file=Path(job["location_file"]),
        accounts_file=Path(job["accounts_file"]) if job["accounts_file"] else None,
        settings_file=Path(job["settings_file"]),
    )


def prepare_input_generation_params(job: Job, subtask_id: int) -> None:
    from worker.exposure import count_locations
    from worker.run_options import check_run_options

    _settings(job)
    check_run_options(_generate_options(job))
    assert job["location_file"]
    rows = count_locations(Path(job["location_file"]))
    logger.info(
        "location file %s: %d rows, %d lookup chunks", job["location_file"], rows, job["num_chunks"]
    )
    for part in ("lookup", "inputs"):
        _run(job, part)


def prepare_keys_file(job: Job, subtask_id: int, chunk_index: int) -> str:
    from worker.lookup import prepare_keys_chunk

    assert job["location_file"]
    path = prepare_keys_chunk(
        model=_model(job),
        options=_generate_options(job),
        location_file=Path(job["location_file"]),
        chunk_index=chunk_index,
        num_chunks=job["num_chunks"],
        out_dir=_run(job, "lookup/chunks"),
    )
    return str(path)


def collect_keys(chunk_outputs: list[str], job: Job, subtask_id: int) -> str:
    from worker.lookup import collect_keys as _collect

    assert job["location_file"]
    keys, _errors = _collect(
        options=_generate_options(job),
        location_file=Path(job["location_file"]),
        chunk_outputs=[Path(p) for p in chunk_outputs],
        out_dir=_run(job, "lookup"),
    )
    return str(keys)


def write_input_files(keys_file: str, job: Job, subtask_id: int) -> str:
    from worker.lookup import keys_names
    from worker.lookup import write_input_files as _write

    options = _generate_options(job)
    errors = Path(keys_file).with_name(keys_names(options)[1])
    _write(
        options=options,
        keys_file=Path(keys_file),
        errors_file=errors if errors.exists() else None,
        input_dir=_run(job, "inputs"),
    )
    return keys_file


def cleanup_input_generation(keys_file: str, job: Job, subtask_id: int) -> dict[str, str]:
    root = Path(job["run_root"])
    archive = _archive(root / "inputs", root / "inputs.tar.gz")
    shutil.rmtree(root / "lookup" / "chunks", ignore_errors=True)
    files = {"input_file_id": str(archive)}
    if keys_file and Path(keys_file).is_file():
        files["lookup_success_file_id"] = keys_file
    return files


def prepare_losses_generation_directory(job: Job, subtask_id: int) -> None:
    from worker.losses import prepare_losses_dir

    if not job["input_dir"] or not Path(job["input_dir"]).is_dir():
        raise InputError(f"input files {job['input_dir']} are missing: generate inputs first")
    prepare_losses_dir(
        model=_model(job),
        input_dir=Path(job["input_dir"]),
        analysis_settings=_settings(job),
        run_dir=_run(job, "losses"),
    )


def generate_losses_chunk(job: Job, subtask_id: int, chunk_index: int) -> str:
    from worker.losses import run_loss_chunk

    run_dir = _run(job, "losses")
    run_loss_chunk(
        model=_model(job), run_dir=run_dir, chunk_index=chunk_index, num_chunks=job["num_chunks"]
    )
    return f"{run_dir}#{chunk_index}"


def generate_losses_output(chunks: list[str], job: Job, subtask_id: int) -> str:
    from worker.losses import generate_losses_output as _output

    output_dir = _run(job, "outputs")
    _output(
        model=_model(job),
        run_dir=_run(job, "losses"),
        num_chunks=job["num_chunks"],
        output_dir=output_dir,
    )
    return str(output_dir)


def cleanup_losses_generation(output_dir: str, job: Job, subtask_id: int) -> dict[str, str]:
    root = Path(job["run_root"])
    archive = _archive(root / "outputs", root / "outputs.tar.gz")
    return {"output_file_id": str(archive)}


#: Step bodies by step slug: every stage's steps must have one when the app is made.
BODIES: dict[str, Callable[..., Any]] = {
    fn.__name__.replace("_", "-"): fn
    for fn in (
        prepare_input_generation_params,
        prepare_keys_file,
        collect_keys,
        write_input_files,
        cleanup_input_generation,
        prepare_losses_generation_directory,
        generate_losses_chunk,
        generate_losses_output,
        cleanup_losses_generation,
    )
}


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
