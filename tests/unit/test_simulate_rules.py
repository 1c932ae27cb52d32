"""The simulator's rules (oasis_keda.runtime.simulate): workers, scale-downs, policies, files.

Covers: a worker's start time and KEDA's cooldown in the figures of one sub-task; a
scale-down of ours stops idle workers and lets the busy one finish (nothing killed); the
Oasis controller's policy deletes a busy pod, whose sub-task is killed after its grace and
run again; KEDA's list-length rule scales to zero under a running sub-task (it counts only
waiting messages) and, with a sub-task longer than cooldown plus grace, never finishes it
before the horizon; a global limit is never exceeded by ours; the workload file round trip
(JSON lines and a JSON list), its errors, the generator's reproducibility; ``--strategy``
parsing; the nearest-rank percentile; the sub-task overhead and phase delay; the timings
line; a separate start time for added workers; the Oasis controller's first come first
served limit.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from oasis_keda.core.config import ScalingConfig
from oasis_keda.core.errors import ConfigError
from oasis_keda.runtime import keda
from oasis_keda.runtime.simulate import workload as wl
from oasis_keda.runtime.simulate.engine import simulate
from oasis_keda.runtime.simulate.policies import (
    Configuration,
    ModelView,
    controller_answers,
    parse_configuration,
)
from oasis_keda.runtime.simulate.results import percentile
from oasis_keda.runtime.simulate.sim_settings import SimSettings
from scaler.strategies import ModelState

DYNAMIC = ScalingConfig(scaling_strategy="DYNAMIC_TASKS", chunks_per_worker=1, worker_count_max=4)
FAST = SimSettings(worker_start_s=1.0)


def analysis(
    k: int, arrival: float, *phases: tuple[float, ...], model: str = "m"
) -> wl.AnalysisWork:
    return wl.AnalysisWork(
        analysis_id=k,
        model_id=model,
        arrival_s=arrival,
        stages=(wl.StageWork(stage="s", phases=phases),),
    )


def workload(scaling: ScalingConfig, *analyses: wl.AnalysisWork) -> wl.Workload:
    models = {a.model_id: scaling for a in analyses}
    return wl.Workload(models=models, analyses=analyses)


def test_one_subtask_start_time_and_cooldown() -> None:
    # pushed to 1 replica at 0, ready at 5, runs 5-15; last active poll at 14, so the
    # 5 s cooldown ends after 19 and the poll at 20 scales to 0
    result = simulate(workload(ScalingConfig(), analysis(1, 0.0, (10.0,))), Configuration(name="x"))
    assert result.makespan_s == 15.0
    assert result.latency_p50_s == result.latency_p95_s == 15.0
    assert result.worker_seconds == 20.0
    assert (result.scale_ups, result.scale_downs, result.peak_workers) == (1, 1, 1)


def test_start_time_is_a_parameter() -> None:
    work = workload(ScalingConfig(), analysis(1, 0.0, (10.0,)))
    slow = simulate(work, Configuration(name="x"), SimSettings(worker_start_s=30.0))
    assert slow.makespan_s == 40.0


# B: four 2 s chunks at 0; A: one 100 s sub-task at 0.5. Four workers start at 0 and are
# ready at 1; the first to finish a chunk (at 3) takes A's sub-task, then the count falls.
MIXED = workload(DYNAMIC, analysis(1, 0.0, (2.0, 2.0, 2.0, 2.0)), analysis(2, 0.5, (100.0,)))


def test_ours_never_kills_the_busy_worker() -> None:
    result = simulate(MIXED, Configuration(name="ours", grace_s=10.0), FAST)
    assert result.completed == 2
    assert (result.killed_tasks, result.killed_work_s) == (0, 0.0)
    assert result.makespan_s == pytest.approx(103.0)  # A runs 3-103 untouched


def test_oasis_controller_deletes_a_busy_pod() -> None:
    conf = Configuration(name="c", policy="oasis-controller", grace_s=10.0)
    result = simulate(MIXED, conf, FAST)
    assert result.completed == 2
    # 4 -> 1 at 3 deletes the three oldest pods, the busy one among them; killed at 13
    assert result.killed_tasks == 1
    assert result.killed_work_s == pytest.approx(10.0)
    assert result.makespan_s == pytest.approx(113.0)


def test_list_length_scales_to_zero_under_running_work() -> None:
    conf = Configuration(name="l", policy="list-length", grace_s=10.0)
    short = workload(DYNAMIC, analysis(1, 0.0, (8.0,)))
    result = simulate(short, conf, FAST)
    # nothing waits once the sub-task runs, so KEDA deactivates after its 5 s cooldown;
    # the 8 s sub-task finishes within the 10 s grace
    assert result.completed == 1 and result.killed_tasks == 0
    long = workload(DYNAMIC, analysis(1, 0.0, (100.0,)))
    stuck = simulate(long, conf, dataclasses.replace(FAST, horizon_s=500.0))
    assert stuck.completed == 0
    assert math.isinf(stuck.makespan_s)
    assert stuck.killed_tasks >= 10
    ours = simulate(long, Configuration(name="ours", grace_s=10.0), FAST)
    assert ours.completed == 1 and ours.killed_tasks == 0


def test_global_limit_is_a_ceiling_for_ours() -> None:
    wide = ScalingConfig(scaling_strategy="DYNAMIC_TASKS", chunks_per_worker=1, worker_count_max=5)
    work = workload(
        wide,
        analysis(1, 0.0, (3.0,) * 10, model="a"),
        analysis(2, 1.0, (3.0,) * 10, model="b"),
        analysis(3, 6.0, (2.0,) * 10, model="a"),
    )
    result = simulate(work, Configuration(name="limited", global_limit=3), FAST)
    assert result.completed == 3
    assert result.peak_workers <= 3
    free = simulate(work, Configuration(name="free"), FAST)
    assert free.peak_workers > 3


def test_simulation_is_deterministic() -> None:
    work = wl.generate(wl.GeneratorSettings(analyses=30, seed=7), DYNAMIC)
    for policy in ("oasis-keda", "list-length", "oasis-controller"):
        conf = parse_configuration({"policy": policy}, policy)
        assert simulate(work, conf) == simulate(work, conf)


def test_workload_round_trip(tmp_path: Path) -> None:
    work = wl.generate(wl.GeneratorSettings(analyses=5, seed=1), DYNAMIC)
    assert wl.read(wl.write(work, tmp_path / "w.jsonl")) == work
    as_list = [json.loads(line) for line in wl.to_lines(work)]
    (tmp_path / "w.json").write_text(json.dumps(as_list))
    assert wl.read(tmp_path / "w.json") == work


def test_generator_is_reproducible() -> None:
    settings = wl.GeneratorSettings(analyses=20, seed=3)
    one = wl.generate(settings)
    assert wl.generate(settings) == one
    assert wl.generate(wl.GeneratorSettings(analyses=20, seed=4)) != one
    first = one.analyses[0]
    assert [s.stage for s in first.stages] == ["inputs", "losses"]
    assert 2 <= first.stages[0].chunks <= 8


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"kind": "other"}'], "kind must be"),
        (["not json"], "not JSON"),
        ([], "no analysis"),
        (['{"kind": "analysis", "stages": []}'], "list of stages"),
        (['{"kind": "analysis", "stages": [{"phases": [[-1]]}]}'], "number >= 0"),
        (['{"kind": "analysis", "stages": [{"phases": [[]]}]}'], "non-empty list"),
    ],
)
def test_workload_errors(lines: list[str], message: str) -> None:
    with pytest.raises(wl.WorkloadError, match=message):
        wl.from_lines(lines)


def test_unknown_model_gets_the_default_scaling() -> None:
    work = wl.from_lines(['{"kind": "analysis", "model_id": "x", "stages": [{"phases": [[1]]}]}'])
    assert work.models == {"x": ScalingConfig()}


def test_parse_configuration() -> None:
    conf = parse_configuration(
        {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "global_limit": 6}, "c1"
    )
    assert conf.name == "c1" and conf.policy == "oasis-keda" and conf.global_limit == 6
    assert conf.scaling is not None and conf.scaling.chunks_per_worker == 2
    assert conf.effective_grace_s == 600.0
    recorded = parse_configuration({"name": "r", "policy": "list-length"}, "c2")
    assert recorded.scaling is None and recorded.effective_grace_s == 30.0
    assert conf.baseline("oasis-controller").name == "c1 / oasis-controller"
    with pytest.raises(ValueError, match="policy must be"):
        parse_configuration({"policy": "magic"}, "x")
    with pytest.raises(ConfigError):
        parse_configuration({"chunks_per_worker": 0}, "x")


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.95) == 4.0
    assert math.isnan(percentile([], 0.5))


def test_task_overhead_and_phase_delay() -> None:
    work = workload(ScalingConfig(), analysis(1, 0.0, (1.0,), (1.0,)))
    settings = SimSettings(task_overhead_s=0.5, phase_delay_s=2.0)
    # ready at 5; 1 s + 0.5 s; the next phase queued 2 s later; 1 s + 0.5 s
    assert simulate(work, Configuration(name="x"), settings).makespan_s == pytest.approx(10.0)


def test_timings_line_round_trip(tmp_path: Path) -> None:
    work = dataclasses.replace(
        wl.generate(wl.GeneratorSettings(analyses=2)),
        timings={"worker_start_s": 3.5, "task_overhead_s": 0.1, "phase_delay_s": 0.2},
    )
    assert wl.read(wl.write(work, tmp_path / "w.jsonl")).timings == work.timings


def test_added_workers_start_time() -> None:
    # two 10 s chunks, 1 chunk per worker: the push starts a worker at 0 and the poll at 0
    # adds a second beside it; both ready at 1, or the second only at 9
    work = workload(DYNAMIC, analysis(1, 0.0, (10.0, 10.0)))
    same = simulate(work, Configuration(name="x"), FAST)
    slower = simulate(work, Configuration(name="x"), dataclasses.replace(FAST, added_start_s=9.0))
    assert same.makespan_s == pytest.approx(11.0)
    assert slower.makespan_s == pytest.approx(19.0)


def test_oasis_controller_hands_out_its_limit_first_come_first_served() -> None:
    def view(model: str, waiting: int, arrival: float) -> ModelView:
        state = ModelState(waiting=waiting, main_tasks=1)
        return ModelView(
            model_id=model,
            config=DYNAMIC,
            state=state,
            auto=keda.AutoscalerState(),
            oldest_arrival=arrival,
        )

    views = {"late": view("late", 4, 5.0), "early": view("early", 3, 1.0)}
    # the early model takes the 3 it asks, the late one what is left of 5
    assert controller_answers(views, 5) == {"early": 3, "late": 2}
    assert controller_answers(views, None) == {"early": 3, "late": 4}


def test_planned_work_counts_later_phases_and_stages() -> None:
    """The simulated scaler sees an analysis's whole planned work (its later phases and its
    loss stage) from its first stage on, as the controller records it."""
    stages = (
        wl.StageWork(stage="inputs", phases=((1.0,), (5.0,) * 4, (1.0,))),
        wl.StageWork(stage="losses", phases=((1.0,), (5.0,) * 6, (1.0,)), gap_s=0.5),
    )
    work = wl.AnalysisWork(analysis_id=1, model_id="m", arrival_s=0.0, stages=stages)
    assert wl.planned_subtasks(work, 0, 0, 1, queued=True) == 1 + 4 + 1 + (1 + 6 + 1)
    assert wl.planned_subtasks(work, 1, 0, 0, queued=False) == 1 + 6 + 1  # between the stages
