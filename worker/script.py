"""Run an oasislmf chunk script's commands in this process instead of with bash.

oasislmf's ``create_bash_analysis`` writes a script of background jobs joined by FIFOs::

    ( eltpy -E bin -s work/kat/il_S1_elt_sample_P2 < fifo/il_S1_selt_ord_P2 ) 2>> log & pid1=$!
    tee < fifo/il_S1_summary_P2 fifo/il_S1_selt_ord_P2 2.work/il_S1_summaryleccalc/P2.bin ...
    ( summarypy -t il -1 fifo/il_S1_summary_P2 < fifo/il_P2 ) 2>> log &
    ( ( evepy 2 2 | gulmc ... | tee fifo/gul_P2 | fmpy -a2 > fifo/il_P2 ) 2>> log ) & pid9=$!

Every tool is a Python console script whose ``main()`` reads ``sys.stdin`` and writes
``sys.stdout`` or named files. We run the jobs in data-flow order (a job runs once every
FIFO it reads has been written in full), with regular files at the FIFO paths, calling
each tool's ``main()`` with ``sys.argv``/``stdin``/``stdout`` set. Each tool sees the same
bytes as under bash, so outputs are identical; what goes is a process start-up per tool.

The parser accepts only the shapes above. A line it does not know makes the whole chunk
fall back to bash (:class:`Unsupported`), which is always correct, only slower.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# tools that only read stdin and write stdout or files named in their arguments
PY_TOOLS = frozenset(
    {"evepy", "gulmc", "gulpy", "fmpy", "summarypy", "eltpy", "pltpy", "katpy", "aalpy", "lecpy"}
)
_STDERR_REDIRECT = re.compile(r"\s2>>?\s*\S+")
_JOB_SUFFIX = re.compile(r"\s*&\s*(\w*pid\d+=\$!)?\s*$")
_FIND_OUTPUT = (
    "find output -type f -not -name '*summary-info*' -not -name '*.json' -exec rm -R -f {} +"
)


class Unsupported(Exception):
    """The script holds something this interpreter does not run: use bash."""


@dataclass
class Command:
    argv: list[str]
    stdin: str | None = None
    stdout: str | None = None


@dataclass
class Job:
    commands: list[Command]
    reads: set[str] = field(default_factory=set)  # FIFOs
    writes: set[str] = field(default_factory=set)  # FIFOs


@dataclass
class Plan:
    env: dict[str, str] = field(default_factory=dict)
    # in script order: set-up actions, and groups of jobs that end at an ``exec_wait``
    steps: list[Callable[[], None] | list[Job]] = field(default_factory=list)
    fifos: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> list[Job]:
        return [job for step in self.steps if isinstance(step, list) for job in step]


def _logical_lines(text: str) -> Iterator[str]:
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield (buf + line).strip()
        buf = ""


def _commands(line: str) -> list[Command]:
    body = _JOB_SUFFIX.sub("", line)
    body = _STDERR_REDIRECT.sub(" ", " " + body)
    lexer = shlex.shlex(body, posix=True, punctuation_chars="|<>()")
    lexer.whitespace_split = True
    tokens = [t for t in lexer if t not in ("(", ")")]
    commands: list[Command] = []
    current = Command(argv=[])
    it = iter(tokens)
    for tok in it:
        if tok == "|":
            commands.append(current)
            current = Command(argv=[])
        elif tok == "<":
            current.stdin = next(it)
        elif tok == ">":
            current.stdout = next(it)
        elif tok in (">>", "<<", "||", "|&"):
            raise Unsupported(f"redirect {tok!r} in: {line}")
        else:
            current.argv.append(tok)
    commands.append(current)
    return commands


def _parse_job(line: str, fifos: set[str]) -> Job:
    commands = _commands(line)
    job = Job(commands=commands)
    for i, cmd in enumerate(commands):
        if not cmd.argv:
            raise Unsupported(f"empty command in: {line}")
        name = cmd.argv[0]
        if name != "tee" and name not in PY_TOOLS:
            raise Unsupported(f"command {name!r} in: {line}")
        if cmd.stdin is not None and i > 0:
            raise Unsupported(f"stdin redirect inside a pipe: {line}")
        if cmd.stdin in fifos:
            job.reads.add(cmd.stdin)
        if cmd.stdout in fifos:
            job.writes.add(cmd.stdout)
        arg_fifos = {a for a in cmd.argv[1:] if a in fifos}
        if arg_fifos and name not in ("tee", "summarypy"):
            raise Unsupported(f"{name} names a FIFO in its arguments: {line}")
        job.writes |= arg_fifos
        if name == "summarypy" and "-m" in cmd.argv:
            # summarypy -m also writes each summary set's index beside it (its own naming)
            job.writes |= {idx for a in arg_fifos if (idx := a.rsplit(".", 1)[0] + ".idx") in fifos}
    return job


def _clear_dir_contents(directory: Path) -> None:
    if directory.is_dir():
        for child in directory.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _clear_outputs() -> None:
    for path in Path("output").rglob("*"):
        if path.is_file() and "summary-info" not in path.name and path.suffix != ".json":
            path.unlink()


def _body_start(lines: list[str]) -> int:
    """Index of the first line after oasislmf's preamble (which ends with ``exec_wait(){}``)."""
    try:
        i = lines.index("exec_wait(){")
        return lines.index("}", i) + 1
    except ValueError as exc:
        raise Unsupported("no exec_wait() definition") from exc


def _action(line: str, fifo_set: set[str], plan: Plan) -> Callable[[], None] | None:
    if line == _FIND_OUTPUT:
        return _clear_outputs
    if m := re.fullmatch(r"rm -R -f (\S+)/\*", line):
        target = Path(m.group(1))
        return lambda: _clear_dir_contents(target)
    if m := re.fullmatch(r"rm -R -f (\S+)/", line):
        target = Path(m.group(1))
        return lambda: shutil.rmtree(target, ignore_errors=True)
    if m := re.fullmatch(r"mkdir -p (\S+)", line):
        path = m.group(1)
        return lambda: os.makedirs(path, exist_ok=True)
    if m := re.fullmatch(r"mkfifo (\S+)", line):
        fifo_set.add(m.group(1))
        plan.fifos.append(m.group(1))
        fifo_dir = Path(m.group(1)).parent
        return lambda: fifo_dir.mkdir(parents=True, exist_ok=True)
    return None


def parse(text: str) -> Plan:
    """The plan of a chunk or output script (raises :class:`Unsupported`)."""
    plan = Plan()
    lines = list(_logical_lines(text))
    body = _body_start(lines)
    for line in lines[:body]:
        m = re.fullmatch(r"(?:export\s+)?(\w+)=(\S+)", line)
        if m and m.group(1) in ("LOG_DIR", "OASIS_PYTOOLS_LOG_DIR"):
            plan.env[m.group(1)] = m.group(2).replace("$LOG_DIR", plan.env.get("LOG_DIR", ""))
    fifo_set: set[str] = set()
    pending: list[Job] = []
    for line in lines[body:]:
        if not line or line.startswith(("#", "check_fifos")):
            continue
        if line.startswith("if [ -s $LOG_DIR/stderror.err ]"):
            break  # oasislmf's own checks of the run follow: we make ours
        if (action := _action(line, fifo_set, plan)) is not None:
            plan.steps.append(action)
        elif line.startswith("exec_wait"):
            plan.steps.append(order_jobs(pending))
            pending = []
        elif _JOB_SUFFIX.search(line):
            pending.append(_parse_job(line, fifo_set))
        else:
            raise Unsupported(f"line: {line}")
    if pending or not plan.jobs:
        raise Unsupported("jobs not followed by exec_wait, or no jobs")
    return plan


def order_jobs(jobs: list[Job]) -> list[Job]:
    """Jobs in data-flow order: each after the jobs writing the FIFOs it reads."""
    writers: dict[str, int] = {}
    for i, job in enumerate(jobs):
        for fifo in job.writes:
            if fifo in writers:
                raise Unsupported(f"FIFO {fifo} has two writers")
            writers[fifo] = i
    done: set[int] = set()
    ordered: list[Job] = []
    while len(ordered) < len(jobs):
        ready = [
            i
            for i, job in enumerate(jobs)
            if i not in done and all(writers.get(f, -1) in done for f in job.reads)
        ]
        if not ready:
            raise Unsupported("FIFO cycle or a FIFO nobody writes")
        for i in ready:
            done.add(i)
            ordered.append(jobs[i])
    return ordered


_TOOL_MAINS: dict[str, Callable[[], Any]] = {}


def _tool_main(name: str) -> Callable[[], Any]:
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
        known = {s[0] for s in saved}
        for name, new in list(manager.loggerDict.items()):
            if isinstance(new, logging.Logger) and new not in known and name.startswith("oasislmf"):
                new.handlers.clear()
                new.propagate = True
                new.setLevel(logging.NOTSET)
        logging.raiseExceptions = capture
        logging.captureWarnings(False)


def _run_tool(argv: list[str], stdin: str | None, stdout: str) -> None:
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
            if exc.code not in (None, 0):
                raise RuntimeError(f"{argv[0]} exited with {exc.code}") from exc
        finally:
            sys.argv, sys.stdin, sys.stdout = saved
            text_out.flush()
            # leave the files to the with-block: a wrapper closed by GC would warn
            text_in.detach()
            text_out.detach()


def _tee(stdin: str | None, outputs: list[str], stdout: str) -> None:
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
            stdout = cmd.stdout or os.devnull
        else:
            counter[0] += 1
            stdout = str(tmp_dir / f"pipe{counter[0]}")
        if cmd.argv[0] == "tee":
            _tee(stdin, cmd.argv[1:], stdout)
        else:
            _run_tool(cmd.argv, stdin, stdout)
        if i > 0 and previous is not None and previous.startswith(str(tmp_dir)):
            os.unlink(previous)
        previous = stdout


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
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
            for fifo in plan.fifos:
                Path(fifo).unlink(missing_ok=True)


def _check_chunk_bins(params: dict[str, Any]) -> None:
    k = params.get("process_number")
    if not k:
        return
    for path in Path(f"{k}.work").rglob(f"P{k}.bin"):
        if path.stat().st_size == 0:
            raise RuntimeError(f"Chunk output error: file '{path}' is empty")


def _write_script(params: dict[str, Any]) -> None:
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
    original = copy.deepcopy(params)
    params = dict(params)
    params.pop("resource_monitor_interval", None)
    _write_script(params)
    text = Path(params["filename"]).read_text(encoding="utf-8")
    result = _run_script(params, text, lambda: fallback(**original))
    if result is not None:
        return result  # bash ran it
    _check_chunk_bins(params)
    return params.get("fifo_queue_dir"), ""


def _run_script(params: dict[str, Any], text: str, fallback: Callable[[], Any]) -> Any:
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
