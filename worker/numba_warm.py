"""Fill the numba cache for a model's pipeline: each tool compiled in its own process.

oasislmf's pipeline tools compile their numba code on first call, with the types of the
data they are given. Run as a pipeline, the compiles come one after another: a tool
compiles only once data reaches it, which is after every tool upstream has compiled. Here
the data dependency is broken in two passes:

1. **record** (one process, ``NUMBA_DISABLE_JIT=1``, so nothing compiles and a small model
   runs in seconds): the model's inputs and a loss run in 2 chunks, through the worker's
   own step bodies (:mod:`worker.steps`), so every tool runs as a worker runs it, with
   the model's run options and analysis settings. Each tool call is recorded (its
   arguments and a copy of its standard input) and the run directory is kept;
2. **replay** (one process per tool, JIT on): the tool's recorded calls in a copy of the
   run directory. Each process compiles exactly the functions and signatures its tool
   uses in the real run, and writes them to the cache (``NUMBA_CACHE_DIR``).

A script the worker runs with bash rather than in-process (one with a tool its
interpreter does not take, e.g. ``modelpy``) cannot be replayed tool by tool: its tools
compile in a **pipeline** process that runs the whole flow with the JIT on.

Beside them, an **inputs** process (JIT on) imports every tool (their eagerly compiled
functions) and runs input generation and the loss run directory's preparation (the numba
code of the lookup and the converters); a **merge** replay rebuilds the merged summary
streams of :mod:`worker.summary_streams`. The orchestration (processes in parallel,
progress) is :mod:`oasis_keda.runtime.warm`'s; this module is what each process runs:
``python -m worker.numba_warm record|inputs|replay ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from oasis_keda.core.stages import INPUTS, LOSSES, Job

#: Loss chunks of the recorded run: more than one, so that the output step merges chunks.
RECORD_CHUNKS = 2
#: Locations of the model's portfolio the warm-up runs (the first ones).
RECORD_LOCATIONS = 10
CALLS_FILE = "calls.json"
#: oasislmf's Python tools, as a script names them (its process check lists them all).
_TOOL_NAME = re.compile(
    r"\b(evepy|modelpy|gulpy|gulmc|fmpy|plapy|summarypy|eltpy|pltpy|katpy|aalpy|lecpy)\b"
)
_PROC_LIST = re.compile(r"^\s*proc_list=.*$", re.MULTILINE)
#: Replays that are not a pipeline tool.
MERGE = "merge"
#: The job that runs the whole pipeline with the JIT on, for tools run with bash.
PIPELINE = "pipeline"


@dataclass
class Call:
    """One recorded tool call: its argv, its standard input (a saved copy), its directory
    (relative to the recorded losses run directory)."""

    argv: list[str]
    stdin: str | None
    cwd: str


@dataclass
class Recording:
    """What the record pass saw: the calls in order, under ``root``."""

    root: Path
    calls: list[Call] = field(default_factory=list)
    #: the recorded losses run directory, as the calls name it
    recorded_dir: str = ""
    #: tools of scripts the worker runs with bash (its interpreter does not take them)
    bash_tools: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / "losses"

    @property
    def tools(self) -> list[str]:
        """The tools the pipeline ran, in order of first use."""
        return list(dict.fromkeys(call.argv[0] for call in self.calls))

    def save(self) -> None:
        data = {
            "run_dir": str(self.run_dir.resolve()),
            "bash_tools": self.bash_tools,
            "calls": [asdict(c) for c in self.calls],
        }
        (self.root / CALLS_FILE).write_text(json.dumps(data, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, root: Path) -> Recording:
        data = json.loads((root / CALLS_FILE).read_text(encoding="utf-8"))
        recorded = str(data["run_dir"])
        calls = [Call(**c) for c in data["calls"]]
        return cls(root=root, calls=calls, recorded_dir=recorded, bash_tools=data["bash_tools"])

    def argv_in(self, call: Call, run_dir: Path, scratch: Path) -> list[str]:
        """A call's argv for a replay in ``run_dir`` (a copy of the recorded one): paths
        into the recorded run directory go to the copy; any other absolute path whose
        directory is gone (the run's FIFO folder) goes to ``scratch``."""
        argv = [call.argv[0]]
        for arg in call.argv[1:]:
            if self.recorded_dir and arg.startswith(self.recorded_dir + os.sep):
                arg = str(run_dir) + arg[len(self.recorded_dir) :]
            elif os.path.isabs(arg) and not os.path.isdir(os.path.dirname(arg)):
                scratch.mkdir(parents=True, exist_ok=True)
                arg = str(scratch / os.path.basename(arg))
            argv.append(arg)
        return argv


def _sample_locations(location_file: Path, root: Path) -> Path:
    """The first :data:`RECORD_LOCATIONS` rows of the location file: the types the tools
    compile for do not depend on the portfolio's size, the time without the JIT does."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "location.csv"
    with location_file.open(encoding="utf-8-sig", newline="") as src:
        lines = [line for _, line in zip(range(RECORD_LOCATIONS + 1), src, strict=False)]
    target.write_text("".join(lines), encoding="utf-8")
    return target


def _job(model_dir: Path, settings_file: Path, root: Path) -> Job:
    model = model_dir.resolve()
    accounts = model / "account.csv"
    locations = _sample_locations(model / "location.csv", root)
    return {
        "analysis_id": 0,
        "run_number": 1,
        "stage": INPUTS,
        "model_id": "warm",
        "model_dir": str(model),
        "queue": "",
        "num_chunks": 1,
        "run_root": str(root / "run"),
        "location_file": str(locations),
        "accounts_file": str(accounts) if accounts.is_file() else None,
        "ri_info_file": None,
        "ri_scope_file": None,
        "currency_conversion_json": None,
        "reporting_currency": None,
        "settings_file": str(settings_file.resolve()),
        "input_dir": None,
        "events": None,
        "options": {},
    }


def run_inputs(job: Job) -> Job:
    """Generate the inputs as the worker does (one lookup chunk); the losses job."""
    from worker import steps

    steps.prepare_input_generation_params(job, 0)
    keys = steps.collect_keys([steps.prepare_keys_file(job, 0, 1)], job, 0)
    parts = [steps.write_input_files(keys, job, 0), steps.write_fm_input_files(keys, job, 0)]
    steps.cleanup_input_generation(parts, job, 0)
    losses = cast(Job, dict(job))
    losses["stage"] = LOSSES
    losses["num_chunks"] = RECORD_CHUNKS
    losses["input_dir"] = str(Path(job["run_root"]) / "inputs")
    steps.prepare_losses_generation_directory(losses, 0)
    return losses


def run_losses(job: Job) -> None:
    from worker import steps

    chunks = [steps.generate_losses_chunk(job, 0, k) for k in range(1, job["num_chunks"] + 1)]
    steps.generate_losses_output(chunks, job, 0)


@contextmanager
def _recording_tools(recording: Recording) -> Iterator[None]:
    """Record every tool call :mod:`worker.script` makes, with a copy of its input."""
    from worker import script

    streams = recording.root / "streams"
    streams.mkdir(parents=True, exist_ok=True)
    original = script.run_tool

    def recorder(argv: list[str], stdin: str | None, stdout: str) -> None:
        saved = None
        if stdin is not None and os.path.exists(stdin):
            saved = str(streams / f"{len(recording.calls)}.bin")
            shutil.copyfile(stdin, saved)
        cwd = os.path.relpath(os.getcwd(), recording.run_dir)
        recording.calls.append(Call(argv=list(argv), stdin=saved, cwd=cwd))
        original(argv, stdin, stdout)

    from worker import script_plan

    original_parse = script_plan.parse

    def parse(text: str) -> Any:
        try:
            return original_parse(text)
        except script_plan.Unsupported:  # run with bash: its tools cannot be replayed alone
            named = _TOOL_NAME.findall(_PROC_LIST.sub("", text))
            recording.bash_tools = list(dict.fromkeys([*recording.bash_tools, *named]))
            raise

    # worker.script calls both through its module globals
    script.run_tool = recorder
    setattr(script, "parse", parse)  # noqa: B010
    try:
        yield
    finally:
        script.run_tool = original
        setattr(script, "parse", original_parse)  # noqa: B010


def record(model_dir: Path, settings_file: Path, root: Path) -> Recording:
    """The record pass (run it with ``NUMBA_DISABLE_JIT=1``): inputs and a loss run of the
    model in ``root``, every tool call recorded."""
    from worker import pipeline

    if os.environ.get("NUMBA_DISABLE_JIT") != "1":
        raise RuntimeError("record runs with NUMBA_DISABLE_JIT=1 (nothing may compile)")
    os.environ[pipeline.PIPELINE_ENV] = "inprocess"  # the calls must go through run_tool
    recording = Recording(root=root)
    losses = run_inputs(_job(model_dir, settings_file, root))
    with _recording_tools(recording):
        run_losses(losses)
    # the output script empties ``work`` when done: rebuild it as the output step found it
    from worker.losses import merge_chunk_work

    merge_chunk_work(recording.run_dir, RECORD_CHUNKS)
    recording.save()
    return recording


def warm_inputs(model_dir: Path, settings_file: Path, root: Path) -> None:
    """The inputs process: every tool imported, inputs generated, a loss run prepared."""
    import importlib

    from worker.warmup import STAGES

    for module in STAGES["tools"]:
        importlib.import_module(module)
    run_inputs(_job(model_dir, settings_file, root))


def replay(root: Path, tool: str, work: Path, progress: Callable[[int, int], None]) -> None:
    """Replay ``tool``'s recorded calls in a copy of the run directory under ``work``."""
    from worker import losses, script

    recording = Recording.load(root)
    copy = work / "run"
    shutil.copytree(recording.root / "run", copy, symlinks=True)
    run_dir = copy / "losses"
    if tool == MERGE:
        progress(0, 1)
        losses.merge_chunk_work(run_dir, RECORD_CHUNKS)
        progress(1, 1)
        return
    calls = [c for c in recording.calls if c.argv[0] == tool]
    if not calls:
        raise ValueError(f"the recorded run has no {tool!r} call")
    out = work / "stdout.bin"
    os.environ["OASIS_PYTOOLS_LOG_DIR"] = str(work / "log")
    for i, call in enumerate(calls):
        progress(i, len(calls))
        os.chdir(run_dir / call.cwd)
        script.forget_filesystems()
        script.run_tool(recording.argv_in(call, run_dir, work / "fifo"), call.stdin, str(out))
    progress(len(calls), len(calls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.numba_warm")
    parser.add_argument("what", choices=["record", "inputs", "replay", PIPELINE])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--settings", type=Path)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--tool", default="")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    from worker.oasis_env import prepare_process

    prepare_process()

    def progress(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)

    if args.what == "record":
        recording = record(args.model_dir, args.settings, args.root)
        print("tools " + " ".join(recording.tools), flush=True)
        print("bash " + " ".join(recording.bash_tools), flush=True)
    elif args.what == PIPELINE:
        progress(0, 1)
        run_losses(run_inputs(_job(args.model_dir, args.settings, args.root)))
        progress(1, 1)
    elif args.what == "inputs":
        warm_inputs(args.model_dir, args.settings, args.root)
    else:
        replay(args.root, args.tool, args.work, progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
