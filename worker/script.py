"""Run an oasislmf chunk script's commands in this process instead of with bash.

Every tool of the script (see :mod:`worker.script_plan` for its shapes) is a Python
console script whose ``main()`` reads ``sys.stdin`` and writes ``sys.stdout`` or named
files. We run the jobs in data-flow order (a job runs once every FIFO it reads has been
written in full), with regular files at the FIFO paths, calling each tool's ``main()``
with ``sys.argv``/``stdin``/``stdout`` set. Each tool sees the same bytes as under bash,
so outputs are identical; what goes is a process start-up per tool.

This module owns running a plan: the tools' entry points, ``tee``, the tools' environment
and the process-wide state they touch (logging configuration, fsspec's filesystem
caches), and the stand-ins for oasislmf's ``run_analysis``/``run_outputs`` that
:mod:`worker.pipeline` hands to oasislmf. A script the parser does not accept runs with
bash, as oasislmf would run it.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from worker.scratch import remove_fifo_folder
from worker.script_plan import Job, Plan, Unsupported, parse

logger = logging.getLogger(__name__)

# each tool's entry point, loaded once per process: what running in-process saves
_TOOL_MAINS: dict[str, Callable[[], Any]] = {}


def _tool_main(name: str) -> Callable[[], Any]:
    """The ``main()`` behind a tool's console script (:class:`Unsupported` if none)."""
    if name not in _TOOL_MAINS:
        found = [ep for ep in entry_points(group="console_scripts") if ep.name == name]
        if not found:
            raise Unsupported(f"no console script {name!r}")
        _TOOL_MAINS[name] = found[0].load()
    return _TOOL_MAINS[name]


@contextmanager
def _preserved_logging() -> Iterator[None]:
    """oasislmf's tools re-level every logger and add handlers; put them all back."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [
        (lg, lg.level, list(lg.handlers), lg.propagate, [h.level for h in lg.handlers])
        for lg in loggers
    ]
    capture = logging.raiseExceptions
    try:
        yield
    finally:
        for lg, level, handlers, propagate, handler_levels in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate = propagate
            for h, hl in zip(handlers, handler_levels, strict=True):
                h.setLevel(hl)
        # loggers the tool made: no handlers of their own, records go to ours
        known = {s[0] for s in saved}
        for name, new in list(manager.loggerDict.items()):
            if isinstance(new, logging.Logger) and new not in known and name.startswith("oasislmf"):
                new.handlers.clear()
                new.propagate = True
                new.setLevel(logging.NOTSET)
        # process-wide switches a tool may have flipped
        logging.raiseExceptions = capture
        logging.captureWarnings(False)


def run_tool(argv: list[str], stdin: str | None, stdout: str) -> None:
    """Call a tool's ``main()`` with ``argv`` and the two files as its stdin and stdout."""
    main = _tool_main(argv[0])
    saved = sys.argv, sys.stdin, sys.stdout
    with open(stdin or os.devnull, "rb") as fin, open(stdout, "wb") as fout:
        text_in = io.TextIOWrapper(fin)
        text_out = io.TextIOWrapper(fout, write_through=True)
        sys.argv, sys.stdin, sys.stdout = list(argv), text_in, text_out
        try:
            with _preserved_logging():
                main()
        except SystemExit as exc:
            # console scripts may end with sys.exit(): only a non-zero code is a failure
            if exc.code not in (None, 0):
                raise RuntimeError(f"{argv[0]} exited with {exc.code}") from exc
        finally:
            sys.argv, sys.stdin, sys.stdout = saved
            text_out.flush()
            # leave the files to the with-block: a wrapper closed by GC would warn
            text_in.detach()
            text_out.detach()


def _tee(stdin: str | None, outputs: list[str], stdout: str) -> None:
    """``tee``: its input is complete before it runs, so each output is a copy of it."""
    if stdin is None:
        raise Unsupported("tee without input")
    for target in [*outputs, stdout]:
        if target == os.devnull:
            continue
        shutil.copyfile(stdin, target)


def run_job(job: Job, tmp_dir: Path, counter: list[int]) -> None:
    """Run one job's pipe, passing data between its commands through temporary files."""
    previous: str | None = None
    for i, cmd in enumerate(job.commands):
        stdin = cmd.stdin if i == 0 else previous
        if i == len(job.commands) - 1:
            # the last command's ``>``; without one its output is dropped
            stdout = cmd.stdout or os.devnull
        else:
            counter[0] += 1
            stdout = str(tmp_dir / f"pipe{counter[0]}")
        if cmd.argv[0] == "tee":
            _tee(stdin, cmd.argv[1:], stdout)
        else:
            run_tool(cmd.argv, stdin, stdout)
        # a file between two commands of the pipe goes once the next one has read it
        if i > 0 and previous is not None and previous.startswith(str(tmp_dir)):
            os.unlink(previous)
        previous = stdout


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore them (or unset them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def forget_filesystems() -> None:
    """Drop fsspec's process-wide directory filesystems.

    fsspec keeps one filesystem instance per set of constructor arguments for the life of
    the process. The tools open the model's files as ``LocalStorage('./static')``: a
    directory filesystem built from a relative path, made absolute with the working
    directory of the run that built it first. Reused, it would read the first run's model
    files in every later run of this process. So no instance outlives a script.
    """
    from fsspec.implementations.dirfs import DirFileSystem  # type: ignore[import-untyped]

    classes: list[type[Any]] = [DirFileSystem]
    while classes:
        cls = classes.pop()
        cls.clear_instance_cache()
        classes.extend(cls.__subclasses__())


def execute(plan: Plan, tmp_dir: Path) -> None:
    """Run a parsed plan in the current directory (the run directory)."""
    counter = [0]
    # the tools read their log directory from the environment, as the script exports it
    log_dir = plan.env.get("OASIS_PYTOOLS_LOG_DIR", plan.env.get("LOG_DIR", "log"))
    forget_filesystems()
    with _environ({"OASIS_PYTOOLS_LOG_DIR": log_dir}):
        try:
            for step in plan.steps:
                if isinstance(step, list):
                    for job in step:
                        run_job(job, tmp_dir, counter)
                else:
                    step()
        finally:
            forget_filesystems()
            # the regular files at FIFO paths: nothing is left where a script makes FIFOs
            for fifo in plan.fifos:
                Path(fifo).unlink(missing_ok=True)


def _check_chunk_bins(params: dict[str, Any]) -> None:
    """The check oasislmf's chunk script ends with: no per-chunk output may be empty."""
    k = params.get("process_number")
    if not k:
        return
    for path in Path(f"{k}.work").rglob(f"P{k}.bin"):
        if path.stat().st_size == 0:
            raise RuntimeError(f"Chunk output error: file '{path}' is empty")


def _write_script(params: dict[str, Any]) -> None:
    """Have oasislmf write the chunk script exactly as its own ``run_analysis`` does."""
    from oasislmf.execution.bash import bash_wrapper, create_bash_analysis

    with bash_wrapper(
        params["filename"],
        params["bash_trace"],
        params["stderr_guard"],
        log_sub_dir=params.get("process_number", None),
        process_number=params.get("process_number", None),
        run_check_complete=False,
    ):
        create_bash_analysis(**params)


def run_analysis(params: dict[str, Any], *, fallback: Callable[..., Any]) -> Any:
    """Stand-in for ``oasislmf.execution.runner.run_analysis`` (cwd = run directory)."""
    # the bash fallback gets the parameters as oasislmf passed them
    original = copy.deepcopy(params)
    params = dict(params)
    # a setting of oasislmf's bash process monitor: no process to watch here
    params.pop("resource_monitor_interval", None)
    _write_script(params)
    text = Path(params["filename"]).read_text(encoding="utf-8")
    try:
        result = _run_script(params, text, lambda: fallback(**original))
    finally:
        remove_fifo_folder(params.get("fifo_queue_dir"))
    if result is not None:
        return result  # bash ran it
    _check_chunk_bins(params)
    return params.get("fifo_queue_dir"), ""


def _run_script(params: dict[str, Any], text: str, fallback: Callable[[], Any]) -> Any:
    """Run a written script in-process (None), else with bash (the fallback's result)."""
    try:
        plan = parse(text)
    except Unsupported as exc:
        logger.info("running %s with bash: %s", params["filename"], exc)
        # oasislmf appends to the script file: start it afresh, as its steps do
        Path(params["filename"]).unlink()
        return fallback()
    t0 = time.monotonic()
    tmp_dir = Path(tempfile.mkdtemp(prefix="oasis-keda-pipe-"))
    try:
        execute(plan, tmp_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info(
        "ran %s in-process (%d jobs) in %.2f s",
        params["filename"],
        len(plan.jobs),
        time.monotonic() - t0,
    )
    return None


def run_outputs(params: dict[str, Any], *, fallback: Callable[..., Any]) -> Any:
    """Stand-in for ``oasislmf.execution.runner.run_outputs`` (cwd = run directory)."""
    from oasislmf.execution.bash import bash_wrapper, create_bash_outputs

    original = copy.deepcopy(params)
    params = dict(params)
    params.pop("resource_monitor_interval", None)
    with bash_wrapper(
        params["filename"],
        params["bash_trace"],
        params["stderr_guard"],
        log_sub_dir="out",
        run_check_complete=False,
    ):
        create_bash_outputs(**params)
    text = Path(params["filename"]).read_text(encoding="utf-8")
    _run_script(params, text, lambda: fallback(**original))
    return ""
