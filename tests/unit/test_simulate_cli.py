"""``oasis-keda analyses export`` and ``oasis-keda simulate`` (click's runner, in-process).

Covers: the export of recorded sub-task rows (a SQLite records database, no Redis reachable)
into phases, arrivals and gaps, the latest run of a stage only, stages with an unfinished
sub-task left out; the platform timings measured from rows; the export command's file and its refusal when nothing is complete;
simulate on a file with two configurations and the baselines (table, results.json, PNG),
on a generated workload (the workload written beside the results), ``--no-baselines`` and
``--json``, and the refusals of bad options.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core.store import SubTask, make_engine, make_session_factory
from oasis_keda.runtime.simulate import workload as wl
from oasis_keda.runtime.simulate.export import measured_timings, workload_from_records
from tests.simulate_support import at, fill

HISTORY = Path(__file__).resolve().parent.parent / "data" / "sim_recorded.jsonl"
NO_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'records.sqlite3'}"
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as session:
        fill(session)
    return url


def test_workload_from_records(database: str) -> None:
    with make_session_factory(make_engine(database))() as session:
        work = workload_from_records(session)
    assert [a.analysis_id for a in work.analyses] == [1, 2]
    first, second = work.analyses
    # the origin is analysis 1's latest inputs run, requested at 9.5
    assert first.arrival_s == 0.0 and second.arrival_s == pytest.approx(10.0)
    inputs, losses = first.stages
    assert inputs.phases == ((1.0,), (2.0, 3.0), (0.5,))
    assert losses.phases == ((0.5,), (3.0,), (0.5,))
    assert losses.gap_s == pytest.approx(1.0)  # inputs ended at 14.5, losses asked at 15.5
    assert second.stages[0].phases == ((1.0,), (1.0,))


def test_export_command(database: str, tmp_path: Path) -> None:
    env = {"OASIS_KEDA_DATABASE_URL": database, "OASIS_KEDA_REDIS_URL": NO_REDIS}
    out = tmp_path / "history.jsonl"
    result = CliRunner().invoke(cli, ["analyses", "export", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "2 analyses" in result.output
    assert "scaling not in the registry" in result.output
    work = wl.read(out)
    assert [a.analysis_id for a in work.analyses] == [1, 2]
    only = CliRunner().invoke(cli, ["analyses", "export", "--out", str(out), "--id", "3"], env=env)
    assert only.exit_code != 0
    assert "no analysis with a completed stage" in only.output


def test_simulate_a_file(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--workload",
            str(HISTORY),
            "--strategy",
            '{"name": "cpw3", "scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 3}',
            "--strategy",
            '{"name": "fixed2", "scaling_strategy": "FIXED_WORKERS", "worker_count_fixed": 2}',
            "--start-s",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cpw3 / list-length" in result.output
    rows = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in rows] == [
        "cpw3",
        "fixed2",
        "cpw3 / list-length",
        "cpw3 / oasis-controller",
        "fixed2 / list-length",
        "fixed2 / oasis-controller",
    ]
    assert all(r["completed"] == 2 for r in rows)
    assert rows[0]["killed_tasks"] == 0
    assert (out / "simulate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "settings.json").read_text())["worker_start_s"] == 1.0


def test_simulate_generated_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--generate",
            '{"analyses": 40, "seed": 2, "loss_chunks": [1, 3]}',
            "--no-baselines",
            "--json",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["recorded"]
    assert rows[0]["analyses"] == rows[0]["completed"] == 40
    assert len(wl.read(tmp_path / "workload.jsonl").analyses) == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of"),
        (["--workload", str(HISTORY), "--generate", "{}"], "exactly one of"),
        (["--workload", str(HISTORY), "--strategy", "[1]"], "JSON object"),
        (["--workload", str(HISTORY), "--strategy", '{"policy": "magic"}'], "policy must be"),
        (["--workload", str(HISTORY), "--strategy", '{"worker_count_max": -1}'], "worker_count"),
        (["--generate", '{"nope": 1}'], "workload"),
    ],
)
def test_simulate_refusals(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_measured_timings() -> None:
    def sub(slug: str, worker: str, queued: float, start: float, end: float) -> SubTask:
        return SubTask(
            stage="inputs",
            slug=slug,
            worker=worker,
            pending_time=at(0.0),
            queue_time=at(queued),
            start_time=at(start),
            end_time=at(end),
        )

    stage = [
        sub("prepare-input-generation-params", "w1", 0.0, 4.0, 5.0),  # first start 4 s in
        sub("prepare-keys-file-1", "w1", 5.3, 5.4, 7.0),  # queued 0.3 s after the step
        sub("prepare-keys-file-2", "w1", 5.3, 7.1, 8.0),  # waited for w1: 0.1 s overhead
        sub("collect-keys", "w1", 8.5, 8.6, 9.0),  # queued 0.5 s after the chunks
    ]
    timings = measured_timings([stage])
    assert timings["worker_start_s"] == pytest.approx(4.0)
    assert timings["task_overhead_s"] == pytest.approx(0.1)
    # phase gaps 0.3 and 0.5: median 0.4, less the overhead
    assert timings["phase_delay_s"] == pytest.approx(0.3)
