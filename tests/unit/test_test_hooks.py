"""The test hooks (oasis_keda.testing) load only when asked, and the statuses are one set.

Covers: without the hooks a process has no ``noop`` stage (a request for it is refused as an
unknown stage before anything is written; a worker app has no noop tasks; no planner, no
dispatch hook); ``--test-hooks`` and ``OASIS_KEDA_TEST_HOOKS=1`` make the ``oasis-keda``
entry point load them and pass the variable on, ``OASIS_KEDA_TEST_HOOKS=0`` does not; the
pause wrapper holds a sub-task after its work with its marker and keeps the body's name; the
in-progress statuses are exactly the stages' queued and started statuses. Each process
state is checked in a fresh interpreter, since loading the hooks is for the whole process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from oasis_keda.core import stages, statuses

# Prints what the process has loaded, as JSON.
_STATE = """
import json, os
from oasis_keda.core.stages import SPECS
from task_controller import app as controller_app
from task_controller.dispatch import PLANNERS
from worker.tasks import BODIES
print(json.dumps({
    "stages": sorted(SPECS),
    "bodies": sorted(b for b in BODIES if b.startswith("noop")),
    "planners": sorted(PLANNERS),
    "dispatch_hooks": len(controller_app._DISPATCH_HOOKS),
    "env": os.environ.get("OASIS_KEDA_TEST_HOOKS"),
}))
"""


def _python(code: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cli_state(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The state after the ``oasis-keda`` entry point ran with ``args`` and a probe command."""
    code = f"""
        import click
        from oasis_keda import cli

        @click.command()
        def probe():
            exec({_STATE!r})

        cli.SUBCOMMANDS["probe"] = "__main__:probe"
        cli.cli.main({[*args, "probe"]!r}, prog_name="oasis-keda", standalone_mode=False)
    """
    environ = {k: v for k, v in os.environ.items() if k != "OASIS_KEDA_TEST_HOOKS"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_without_the_hooks_noop_is_an_unknown_stage(tmp_path: Path) -> None:
    out = _python(
        f"""
        import pathlib
        import pytest
        from oasis_keda.core.settings import Settings
        from oasis_keda.core.stages import spec_for
        from task_controller.requests import Requests
        from worker.app import make_app

        with pytest.raises(ValueError, match="unknown stage 'noop'"):
            spec_for("noop")
        # refused before it touches the records, Redis or the broker
        requests = Requests(sessions=None, client=None, storage=None, app=None)
        with pytest.raises(ValueError, match="unknown stage 'noop'"):
            requests.request(1, "noop", options={{"noop_chunks": 2}})
        settings = Settings(storage_dir=pathlib.Path({str(tmp_path)!r}), database_url="sqlite://")
        app = make_app(settings)
        names = list(app.tasks)
        assert "oasis_keda.worker.prepare_keys_file" in names
        assert not [n for n in names if "noop" in n], names
        app.oasis.client.close()
        exec({_STATE!r})
        """
    )
    state = json.loads(out.splitlines()[-1])
    assert state["stages"] == ["inputs", "losses"]
    assert state["bodies"] == []
    assert state["planners"] == ["inputs", "losses"]
    assert state["dispatch_hooks"] == 0


def test_the_flag_and_the_variable_load_the_hooks() -> None:
    loaded = {
        "stages": ["inputs", "losses", "noop"],
        "bodies": ["noop-chunk", "noop-cleanup", "noop-collect", "noop-prepare"],
        "planners": ["inputs", "losses", "noop"],
        "dispatch_hooks": 1,
        "env": "1",  # passed on to the processes this one starts
    }
    assert _cli_state("--test-hooks") == loaded
    assert _cli_state(env={"OASIS_KEDA_TEST_HOOKS": "1"}) == loaded
    off = _cli_state(env={"OASIS_KEDA_TEST_HOOKS": "0"})
    assert off["stages"] == ["inputs", "losses"]
    assert off["dispatch_hooks"] == 0
    assert _cli_state()["stages"] == ["inputs", "losses"]


def test_pause_after_holds_a_chunk_after_its_work(tmp_path: Path) -> None:
    from oasis_keda.testing import pauses

    seen: list[bool] = []

    def generate_losses_chunk(job: dict[str, Any], subtask_id: int, k: int) -> str:
        return f"chunk {k}"

    def sleep(seconds: float) -> None:
        seen.append((tmp_path / ".paused-generate-losses-chunk-2").exists())

    wrapped = pauses._pausing("generate-losses-chunk", True, generate_losses_chunk)
    assert wrapped.__name__ == "generate_losses_chunk"
    job = {
        "analysis_id": 1,
        "run_root": str(tmp_path),
        "options": {"pause_after_s": {"generate-losses-chunk-2": 5}},
    }
    original = pauses.time.sleep
    pauses.time.sleep = sleep  # type: ignore[assignment]
    try:
        assert wrapped(job, 7, 1) == "chunk 1"
        assert seen == []  # chunk 1 was not asked to pause
        assert wrapped(job, 8, 2) == "chunk 2"
    finally:
        pauses.time.sleep = original  # type: ignore[assignment]
    assert seen == [True]  # held with its marker, removed afterwards
    assert not (tmp_path / ".paused-generate-losses-chunk-2").exists()


def test_one_set_of_statuses() -> None:
    assert statuses.IN_PROGRESS == stages.INPUTS_SPEC.active | stages.LOSSES_SPEC.active
    assert statuses.IDLE == stages.GENERATE_ALLOWED_FROM
    assert stages.RUN_ALLOWED_FROM <= statuses.IDLE
    every = {s.value for s in statuses.AnalysisStatus}
    assert statuses.FINAL | statuses.IN_PROGRESS | {"NEW"} == every
    assert not statuses.FINAL & statuses.IN_PROGRESS
    for spec in (stages.INPUTS_SPEC, stages.LOSSES_SPEC):
        assert {spec.done, spec.error, spec.cancelled} <= statuses.FINAL
        assert stages.stage_of_status(spec.queued) is spec
    assert stages.stage_of_status("READY") is None
