"""The simulator replays a recorded history decision by decision (no wall clock).

The history (tests/data/sim_recorded.jsonl) is two analyses of the demo's shape on one
DYNAMIC_TASKS model (3 chunks per worker, max 4), replayed with the local runtime's timings
(poll every 1 s, cooldown 5 s, scale-down window 15 s) and workers that start in 1 s.
Checked: every decision of ours (what it saw, the scaler's answer, the replicas and KEDA's
or the HPA's reason) against the expected list; that each answer is what
``scaler.strategies.desired_workers`` gives on the state it saw and each replica count what
folding ``keda.poll``/``keda.push`` over the answers gives; the figures of the run; and that
the same replay gives the same result twice. Then a history exported from a real demo run
on the local runtime (tests/data/sim_demo_run.jsonl), checked the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oasis_keda.runtime import keda
from oasis_keda.runtime.simulate import workload as wl
from oasis_keda.runtime.simulate.engine import simulate
from oasis_keda.runtime.simulate.policies import Configuration, model_spec
from oasis_keda.runtime.simulate.results import SimResult
from oasis_keda.runtime.simulate.sim_settings import SimSettings
from scaler.strategies import ModelState, desired_workers

HISTORY = Path(__file__).resolve().parent.parent / "data" / "sim_recorded.jsonl"
SETTINGS = SimSettings(worker_start_s=1.0, record_steps=True)

# (at, source, waiting, busy, main tasks, live, scaler's answer, replicas, reason)
EXPECTED = [
    # analysis 1 arrives: its first step is queued, the scaler pushes, KEDA wakes 0 -> 1
    (0.0, "push", 1, 0, 1, 0, 1, 1, "Push/Activated"),
    (0.0, "poll", 1, 0, 1, 0, 1, 1, "Active"),
    (1.0, "poll", 0, 1, 1, 1, 1, 1, "Active"),  # the worker is ready and takes the step
    (2.0, "poll", 3, 1, 1, 1, 2, 2, "DesiredWithinRange"),  # 4 lookup chunks: ceil(4/3)
    (3.0, "push", 3, 2, 2, 2, 2, 2, "Push/Active"),  # analysis 2 arrives
    (3.0, "poll", 3, 2, 2, 2, 2, 2, "Active"),
    (4.0, "poll", 2, 2, 2, 2, 2, 2, "Active"),
    (5.0, "poll", 1, 2, 2, 2, 2, 2, "Active"),
    (6.0, "poll", 3, 2, 2, 2, 2, 2, "Active"),
    (7.0, "poll", 3, 2, 2, 2, 2, 2, "Active"),
    (8.0, "poll", 2, 2, 2, 2, 2, 2, "Active"),
    (9.0, "poll", 1, 2, 2, 2, 2, 2, "Active"),
    (10.0, "poll", 0, 2, 2, 2, 2, 2, "Active"),
    # analysis 1 between its stages: the answer dips to 1, the 15 s window holds 2
    (11.0, "poll", 0, 1, 2, 2, 1, 2, "Active"),  # analysis 1 between its stages: its mark stays
    (11.1, "push", 1, 1, 2, 2, 1, 2, "Push/Active"),  # its loss stage is requested
    (12.0, "poll", 5, 2, 2, 2, 3, 3, "DesiredWithinRange"),  # 6 loss chunks + 1 step
    (13.0, "poll", 4, 3, 2, 3, 3, 3, "Active"),
    (14.0, "poll", 4, 3, 2, 3, 3, 3, "Active"),
    (15.0, "poll", 2, 3, 2, 3, 3, 3, "Active"),
    (16.0, "poll", 1, 3, 2, 3, 3, 3, "Active"),
    (17.0, "poll", 1, 3, 2, 3, 3, 3, "Active"),
    (17.8, "push", 1, 1, 2, 3, 1, 3, "Push/Active"),  # analysis 2's loss stage
    (18.0, "poll", 0, 2, 2, 3, 2, 3, "Active"),
    (19.0, "poll", 4, 3, 2, 3, 3, 3, "Active"),
    (20.0, "poll", 4, 3, 2, 3, 3, 3, "Active"),
    (21.0, "poll", 4, 3, 2, 3, 3, 3, "Active"),
    (22.0, "poll", 1, 3, 2, 3, 3, 3, "Active"),
    (23.0, "poll", 1, 3, 2, 3, 3, 3, "Active"),
    (24.0, "poll", 1, 3, 2, 3, 3, 3, "Active"),
    (25.0, "poll", 0, 1, 1, 3, 1, 3, "Active"),
    # all done at 25.7: inactive from then on, KEDA scales to 0 once 5 s have passed
    (26.0, "poll", 0, 0, 0, 3, 0, 3, "CoolingDown"),
    (27.0, "poll", 0, 0, 0, 3, 0, 3, "CoolingDown"),
    (28.0, "poll", 0, 0, 0, 3, 0, 3, "CoolingDown"),
    (29.0, "poll", 0, 0, 0, 3, 0, 3, "CoolingDown"),
    (30.0, "poll", 0, 0, 0, 3, 0, 3, "CoolingDown"),
    (31.0, "poll", 0, 0, 0, 3, 0, 0, "Deactivated"),
]


@pytest.fixture(scope="module")
def replay() -> SimResult:
    return simulate(wl.read(HISTORY), Configuration(name="recorded"), SETTINGS)


def test_decisions_step_by_step(replay: SimResult) -> None:
    got = [
        (
            round(s.at, 6),
            s.source,
            s.waiting,
            s.busy,
            s.main_tasks,
            s.live,
            s.wanted,
            s.replicas,
            s.reason,
        )
        for s in replay.steps
    ]
    assert got == EXPECTED


def test_answers_and_replicas_are_the_pure_functions(replay: SimResult) -> None:
    work = wl.read(HISTORY)
    config = work.models["synth"]
    spec = model_spec("synth", SETTINGS.autoscaler, config)
    state = keda.AutoscalerState()
    for step in replay.steps:
        seen = ModelState(
            waiting=step.waiting,
            reserved=step.busy,
            busy=step.busy,
            main_tasks=step.main_tasks,
            live=step.live,
        )
        assert step.wanted == desired_workers(config, seen)
        if step.source == "push":
            decision = keda.push(spec, state, step.wanted > 0, step.at)
        else:
            obs = keda.Observation(active=step.wanted > 0, metric_total=step.wanted, target=1.0)
            decision = keda.poll(spec, state, obs, step.at)
        assert decision.replicas == step.replicas
        state = decision.state


def test_figures(replay: SimResult) -> None:
    assert replay.completed == 2
    assert replay.makespan_s == pytest.approx(25.7)
    # analysis 2 from 3 to 25.7, analysis 1 from 0 to 24.8 (arrival to last step's end)
    assert replay.latency_p50_s == pytest.approx(22.7)
    assert replay.latency_p95_s == pytest.approx(24.8)
    assert (replay.scale_ups, replay.scale_downs) == (3, 1)  # 0->1, 1->2, 2->3; 3->0
    assert (replay.killed_tasks, replay.killed_work_s) == (0, 0.0)
    assert replay.peak_workers == 3
    # one worker 0-31, a second 2-31, a third 12-31
    assert replay.worker_seconds == pytest.approx(31 + 29 + 19)
    assert replay.series == ((0.0, 0), (0.0, 1), (2.0, 2), (12.0, 3), (31.0, 0))


def test_replay_is_deterministic(replay: SimResult) -> None:
    again = simulate(wl.read(HISTORY), Configuration(name="recorded"), SETTINGS)
    assert again == replay


DEMO_RUN = HISTORY.parent / "sim_demo_run.jsonl"


def test_a_real_demo_run_replayed() -> None:
    """A history exported from a real demo run, with the worker start it measured (2.6 s):
    every decision is the pure functions' (as above), and the replicas go 0 -> 1 on the
    push, 3 and 4 as the lookup chunks queue, 0 once the cooldown has passed."""
    work = wl.read(DEMO_RUN)
    settings = SimSettings(worker_start_s=work.timings["worker_start_s"], record_steps=True)
    result = simulate(work, Configuration(name="demo"), settings)
    spec = model_spec("synth", settings.autoscaler, work.models["synth"])
    state = keda.AutoscalerState()
    changes = []
    for step in result.steps:
        seen = ModelState(
            waiting=step.waiting,
            reserved=step.busy,
            busy=step.busy,
            main_tasks=step.main_tasks,
            live=step.live,
        )
        assert step.wanted == desired_workers(work.models["synth"], seen)
        if step.source == "push":
            decision = keda.push(spec, state, step.wanted > 0, step.at)
        else:
            obs = keda.Observation(active=step.wanted > 0, metric_total=step.wanted, target=1.0)
            decision = keda.poll(spec, state, obs, step.at)
        assert decision.replicas == step.replicas
        if decision.replicas != state.replicas:
            changes.append((step.at, decision.replicas, decision.reason))
        state = decision.state
    assert changes == [
        (0.0, 1, "Push/Activated"),
        (3.0, 3, "DesiredWithinRange"),
        (7.0, 4, "DesiredWithinRange"),
        (18.0, 0, "Deactivated"),
    ]
    assert result.completed == 3 and result.killed_tasks == 0
