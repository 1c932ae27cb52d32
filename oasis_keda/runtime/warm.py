"""``oasis-keda model warm``: compile a model's numba code in parallel, once.

oasislmf's pipeline tools compile their numba code on first use, and run as a pipeline
they compile one after another on one core (minutes on a small machine). Here each tool
compiles in its own process (:mod:`worker.numba_warm` says how the data dependency between
them is broken), at most ``jobs`` processes at a time (default: the machine's cores), the
slowest tools first, with a progress bar per tool. Only the tools the model's pipeline runs
with its run options and analysis settings are compiled: the record pass finds them.

The compiled code goes to the numba cache the workers read (``NUMBA_CACHE_DIR``, else
``~/.cache/oasis-keda/numba``). A marker per model configuration (the model's
``oasislmf.json``, the analysis settings and the versions of oasislmf, numba and Python)
says it is done; a second call with the same configuration returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from oasis_keda.runtime.errors import LocalRuntimeError

#: Markers of finished warm-ups, one file per configuration, in the cache directory.
MARKER_DIR = ".oasis-keda-warmed"
TIMEOUT_S = 1800.0
RECORD, INPUTS, PIPELINE = "record", "inputs", "pipeline"
#: Slowest to compile first (seconds on one core, this machine's cold cache), so that the
#: longest compile never starts last.
COST_ORDER = (
    PIPELINE,
    "gulmc",
    "fmpy",
    "gulpy",
    "summarypy",
    "lecpy",
    "aalpy",
    "eltpy",
    "pltpy",
    "katpy",
    "plapy",
    "merge",
    "evepy",
)


@dataclass
class WarmResult:
    """What a warm-up did: its seconds in all, the tools compiled, each job's seconds."""

    seconds: float
    tools: list[str]
    job_seconds: dict[str, float] = field(default_factory=dict)
    jobs: int = 1


@dataclass
class _Job:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[str] | None = None
    started: float = 0.0
    lines: list[str] = field(default_factory=list)


def marker_key(model_dir: Path, settings_file: Path) -> str:
    """The configuration's key: model config and settings bytes, library versions."""
    digest = hashlib.sha256()
    for part in (
        sys.version,
        version("oasislmf"),
        version("numba"),
        (model_dir / "oasislmf.json").read_bytes(),
        settings_file.read_bytes(),
    ):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def order_tools(tools: list[str]) -> list[str]:
    """The replays to run for these tools (and the summary-stream merge), slowest first."""
    wanted = [*tools, "merge"]

    def cost(name: str) -> int:
        return COST_ORDER.index(name) if name in COST_ORDER else len(COST_ORDER)

    return sorted(dict.fromkeys(wanted), key=cost)


def warm_model(
    model_dir: Path,
    *,
    cache_dir: Path,
    settings_file: Path | None = None,
    jobs: int | None = None,
    env: Mapping[str, str] | None = None,
    console: Console | None = None,
    force: bool = False,
) -> WarmResult | None:
    """Compile the model's pipeline into ``cache_dir``; None if already done for this
    configuration (``force``: do it again)."""
    model_dir = Path(model_dir).resolve()
    settings_file = (settings_file or model_dir / "analysis_settings.json").resolve()
    if not settings_file.is_file():
        raise LocalRuntimeError(f"no analysis settings: {settings_file} is not a file")
    console = console or Console(stderr=True)
    marker = cache_dir / MARKER_DIR / marker_key(model_dir, settings_file)
    if marker.exists() and not force:
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    slots = max(1, jobs or os.cpu_count() or 1)
    bin_dir = Path(sys.executable).parent
    base = {
        **(os.environ if env is None else env),
        "NUMBA_CACHE_DIR": str(cache_dir),
        "PATH": f"{bin_dir}{os.pathsep}{(env or os.environ).get('PATH', os.defpath)}",
    }
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="oasis-keda-warm-"))
    try:
        runner = _Runner(root, base, slots, console)
        common = ["--model-dir", str(model_dir), "--settings", str(settings_file)]
        runner.pipeline_args = [*common, "--root", str(root / PIPELINE)]
        runner.add(RECORD, [*common, "--root", str(root / "record")], jit=False)
        runner.add(INPUTS, [*common, "--root", str(root / "inputs")])
        tools = runner.run()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(" ".join(tools) + "\n", encoding="utf-8")
    return WarmResult(
        seconds=time.monotonic() - started, tools=tools, job_seconds=runner.seconds, jobs=slots
    )


class _Runner:
    """Runs the warm-up's processes, ``slots`` at a time, with a progress bar each."""

    def __init__(self, root: Path, env: dict[str, str], slots: int, console: Console) -> None:
        self.root, self.env, self.slots = root, env, slots
        self.pending: list[_Job] = []
        self.running: list[_Job] = []
        self.seconds: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("{task.description:>10}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[state]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.pipeline_args: list[str] = []

    def add(self, name: str, args: list[str], *, jit: bool = True) -> None:
        what = name if name in (RECORD, INPUTS, PIPELINE) else "replay"
        env = dict(self.env)
        if not jit:
            env["NUMBA_DISABLE_JIT"] = "1"
        argv = [sys.executable, "-m", "worker.numba_warm", what, *args]
        self.pending.append(_Job(name, argv, env, self.root / f"{name}.log"))
        self.tasks[name] = self.progress.add_task(name, total=None, start=False, state="waiting")

    def run(self) -> list[str]:
        tools: list[str] = []
        deadline = time.monotonic() + TIMEOUT_S
        with self.progress:
            try:
                while self.pending or self.running:
                    while self.pending and len(self.running) < self.slots:
                        self._start(self.pending.pop(0))
                    for job in list(self.running):
                        if job.proc is not None and job.proc.poll() is not None:
                            self._finished(job)
                            if job.name == RECORD:
                                tools, bash = self._tools(job)
                                if bash:  # run by bash: compiled by a whole run, JIT on
                                    self.add(PIPELINE, self.pipeline_args)
                                for tool in order_tools(tools):
                                    self.add(tool, self._replay_args(tool))
                                tools = list(dict.fromkeys([*tools, *bash]))
                    if time.monotonic() > deadline:
                        raise LocalRuntimeError(f"warm-up not done after {TIMEOUT_S:.0f} s")
                    time.sleep(0.05)
            except BaseException:
                self._kill_all()
                raise
        return tools

    def _replay_args(self, tool: str) -> list[str]:
        work = self.root / "replay" / tool
        return ["--root", str(self.root / RECORD), "--tool", tool, "--work", str(work)]

    def _start(self, job: _Job) -> None:
        job.started = time.monotonic()
        with job.log.open("w") as log:
            job.proc = subprocess.Popen(
                job.argv,
                env=job.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # a kill takes the tool's children too
            )
        self.running.append(job)
        self.progress.start_task(self.tasks[job.name])
        self.progress.update(self.tasks[job.name], state="compiling", total=1, completed=0)
        threading.Thread(target=self._follow, args=(job,), daemon=True).start()

    def _follow(self, job: _Job) -> None:
        """Read the job's ``progress DONE TOTAL`` lines into its bar."""
        assert job.proc is not None and job.proc.stdout is not None
        with job.proc.stdout:
            self._read(job)

    def _read(self, job: _Job) -> None:
        assert job.proc is not None and job.proc.stdout is not None
        for line in job.proc.stdout:
            job.lines.append(line.strip())
            parts = line.split()
            if len(parts) == 3 and parts[0] == "progress":
                done, total = int(parts[1]), int(parts[2])
                self.progress.update(self.tasks[job.name], completed=done, total=max(total, 1))

    def _finished(self, job: _Job) -> None:
        assert job.proc is not None
        self.running.remove(job)
        self.seconds[job.name] = time.monotonic() - job.started
        task = self.tasks[job.name]
        if job.proc.returncode != 0:
            self.progress.update(task, state="[red]failed")
            tail = job.log.read_text(errors="replace").splitlines()[-20:]
            raise LocalRuntimeError(
                f"numba warm-up {job.name} failed (exit {job.proc.returncode}):\n" + "\n".join(tail)
            )
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, completed=total, total=total, state="done")
        self.progress.stop_task(task)

    def _tools(self, job: _Job) -> tuple[list[str], list[str]]:
        """The tools the record pass saw run in-process, and those run by bash."""
        # the reader thread may still hold the last lines: give it a moment
        for _ in range(100):
            found = {line.split(" ", 1)[0]: line.split()[1:] for line in job.lines}
            if "tools" in found and "bash" in found:
                return found["tools"], found["bash"]
            time.sleep(0.02)
        raise LocalRuntimeError("numba warm-up: the record pass named no tools")

    def _kill_all(self) -> None:
        for job in self.running:
            if job.proc is not None and job.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job.proc.pid, signal.SIGKILL)
                job.proc.wait()
