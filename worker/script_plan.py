"""The plan of an oasislmf chunk or output script: which jobs, in which order.

oasislmf's ``create_bash_analysis`` writes a script of background jobs joined by FIFOs::

    ( eltpy -E bin -s work/kat/il_S1_elt_sample_P2 < fifo/il_S1_selt_ord_P2 ) 2>> log & pid1=$!
    tee < fifo/il_S1_summary_P2 fifo/il_S1_selt_ord_P2 2.work/il_S1_summaryleccalc/P2.bin ...
    ( summarypy -t il -1 fifo/il_S1_summary_P2 < fifo/il_P2 ) 2>> log &
    ( ( evepy 2 2 | gulmc ... | tee fifo/gul_P2 | fmpy -a2 > fifo/il_P2 ) 2>> log ) & pid9=$!

:func:`parse` turns that text into a :class:`Plan`: the set-up lines (``rm``, ``mkdir``,
``mkfifo``) as actions, and each group of jobs up to an ``exec_wait`` in data-flow order
(:func:`order_jobs`: a job comes after every job writing a FIFO it reads). Parsing runs
nothing; :mod:`worker.script` runs the plan.

The parser accepts only the shapes above. A line it does not know makes the whole chunk
fall back to bash (:class:`Unsupported`), which is always correct, only slower.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# tools that only read stdin and write stdout or files named in their arguments
PY_TOOLS = frozenset(
    {"evepy", "gulmc", "gulpy", "fmpy", "summarypy", "eltpy", "pltpy", "katpy", "aalpy", "lecpy"}
)
# ``2>> log``: the tools' stderr; in-process they log through logging instead
_STDERR_REDIRECT = re.compile(r"\s2>>?\s*\S+")
# a background job: ``... &`` with or without ``pidN=$!``
_JOB_SUFFIX = re.compile(r"\s*&\s*(\w*pid\d+=\$!)?\s*$")
# the output script's clean-up of earlier results (keeping summary-info and JSON files)
_FIND_OUTPUT = (
    "find output -type f -not -name '*summary-info*' -not -name '*.json' -exec rm -R -f {} +"
)


class Unsupported(Exception):
    """The script holds something this interpreter does not run: use bash."""


@dataclass
class Command:
    """One command of a pipe, with its ``<`` and ``>`` redirects (files or FIFOs)."""

    argv: list[str]
    stdin: str | None = None
    stdout: str | None = None


@dataclass
class Job:
    """One background job: a pipe of commands, and the FIFOs it reads and writes."""

    commands: list[Command]
    reads: set[str] = field(default_factory=set)  # FIFOs
    writes: set[str] = field(default_factory=set)  # FIFOs


@dataclass
class Plan:
    """What a script does, in order; :func:`worker.script.execute` runs it."""

    # the log directories the script exports to its tools
    env: dict[str, str] = field(default_factory=dict)
    # in script order: set-up actions, and groups of jobs that end at an ``exec_wait``
    steps: list[Callable[[], None] | list[Job]] = field(default_factory=list)
    # every FIFO path: regular files stand in for them, removed after the run
    fifos: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> list[Job]:
        return [job for step in self.steps if isinstance(step, list) for job in step]


def _logical_lines(text: str) -> Iterator[str]:
    """The script's lines, with backslash continuations joined."""
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield (buf + line).strip()
        buf = ""


def _commands(line: str) -> list[Command]:
    """The commands of one job line, split at ``|``, with their redirects."""
    body = _JOB_SUFFIX.sub("", line)
    body = _STDERR_REDIRECT.sub(" ", " " + body)
    lexer = shlex.shlex(body, posix=True, punctuation_chars="|<>()")
    lexer.whitespace_split = True
    # subshell parentheses only group the job: a flat pipe runs the same
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
    """One job line, checked to hold only tools we can call and FIFOs we can follow."""
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
        # FIFOs named as arguments are outputs: only tee and summarypy write them
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
    """The set-up step a line stands for (None: not a set-up line)."""
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
        # no FIFO is made: the writing job creates a regular file there
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
    # the preamble: only the log directories matter (the tools read them from the env)
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
    # in rounds: every job whose inputs are complete, in script order
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
