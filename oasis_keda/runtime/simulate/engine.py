"""The simulated clock: a workload against one scaling configuration, event by event.

Events are sub-task ends, workers becoming ready, grace periods running out, stage
requests and the autoscaler's polls (every ``pollingInterval``, on a grid from 0; a model
with nothing in progress and no worker is not polled until work arrives). The rules, stated
in docs/SIMULATOR.md:

* a stage's phases are queued one after another, each phase's sub-tasks at once (FIFO);
* a worker takes one sub-task at a time (prefetch 1, acks_late): it holds nothing while
  idle, and its running sub-task counts as reserved and busy;
* a new worker is ready ``worker_start_s`` after the replicas went up;
* a scale-down is a warm shutdown: a still-starting or idle victim exits at once, a busy
  one finishes its sub-task then exits, unless its grace period ends first: then the
  sub-task is killed and goes back to the head of the queue (work killed);
* the policy picks replicas (:mod:`.policies`); at equal times, ends come before polls;
* the scaler sees an analysis's planned work (``count_planned``) and keeps its mark between
  its stages, as the task controller records them.

Nothing reads a clock: the same workload and configuration give the same result.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
from typing import Any

from oasis_keda.runtime import keda
from oasis_keda.runtime.simulate import policies as pol
from oasis_keda.runtime.simulate.results import SimResult, Step, percentile
from oasis_keda.runtime.simulate.sim_settings import SimSettings
from oasis_keda.runtime.simulate.workload import AnalysisWork, Workload, planned_subtasks
from oasis_keda.runtime.spec import ScaledObjectSpec
from scaler.strategies import ModelState

# Event kinds, in the order they run at equal times.
DONE, KILL, READY, QUEUE, ARRIVE, POLL = range(6)


@dataclasses.dataclass(eq=False)
class _Task:
    run: _Run
    duration: float


@dataclasses.dataclass(eq=False)
class _Run:
    work: AnalysisWork
    stage: int = 0
    phase: int = 0
    left: int = 0
    done_at: float | None = None


@dataclasses.dataclass(eq=False)
class _Worker:
    model: str
    started_at: float
    ready: bool = False
    task: _Task | None = None
    task_started: float = 0.0
    task_seq: int = 0
    stopping: bool = False
    alive: bool = True


@dataclasses.dataclass(eq=False)
class _Model:
    view: pol.ModelView
    spec: ScaledObjectSpec
    queue: collections.deque[_Task] = dataclasses.field(default_factory=collections.deque)
    workers: list[_Worker] = dataclasses.field(default_factory=list)
    replicas: int = 0
    stages: list[_Run] = dataclasses.field(default_factory=list)
    between: list[_Run] = dataclasses.field(default_factory=list)  # next stage marked, not arrived
    polled: bool = False

    def model_state(self) -> ModelState:
        busy = sum(1 for w in self.workers if w.task is not None)
        return ModelState(
            waiting=len(self.queue),
            reserved=busy,
            busy=busy,
            main_tasks=len(self.stages) + len(self.between),
            live=sum(1 for w in self.workers if w.ready),
            planned=sum(
                planned_subtasks(r.work, r.stage, r.phase, r.left, queued=r in self.stages)
                for r in (*self.stages, *self.between)
            ),
        )

    @property
    def idle(self) -> bool:
        return not self.stages and not self.queue and not self.workers and self.replicas == 0


class Simulation:
    """One run of a workload under one configuration (:meth:`run` returns the result)."""

    def __init__(
        self, workload: Workload, configuration: pol.Configuration, settings: SimSettings
    ) -> None:
        self.workload = workload
        self.conf = configuration
        self.settings = settings
        self.interval = float(settings.autoscaler.polling_interval_s)
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.models: dict[str, _Model] = {}
        for model_id, recorded in sorted(workload.models.items()):
            config = configuration.scaling_for(recorded)
            view = pol.ModelView(
                model_id=model_id, config=config, state=ModelState(), auto=keda.AutoscalerState()
            )
            self.models[model_id] = _Model(
                view=view, spec=pol.model_spec(model_id, settings.autoscaler, config)
            )
        self.runs = [_Run(work=a) for a in workload.analyses]
        self.alive = 0
        self.worker_seconds = 0.0
        self.series: list[tuple[float, int]] = [(0.0, 0)]
        self.steps: list[Step] = []
        self.ups = self.downs = self.killed = 0
        self.killed_s = 0.0
        self.peak = 0

    # -- the event queue ------------------------------------------------------------------

    def _at(self, t: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, payload))

    def _schedule_poll(self, m: _Model) -> None:
        if not m.polled:
            m.polled = True
            self._at(math.ceil(self.now / self.interval) * self.interval, POLL, m)

    def run(self) -> SimResult:
        for r in self.runs:
            self._at(r.work.arrival_s, ARRIVE, r)
        for m in self.models.values():
            if m.spec.min_replica_count > 0:
                self._schedule_poll(m)
        horizon = self.settings.horizon_s
        if horizon is None:
            last = max((r.work.arrival_s for r in self.runs), default=0.0)
            horizon = last + 10 * self.workload.work_s + 3600.0
        while self.events:
            t, kind, _, payload = heapq.heappop(self.events)
            if t > horizon:
                break
            if kind == POLL and self._finished() and t > self._tail_end():
                continue
            self._advance(t)
            self._handle(kind, payload)
            self._dispatch()
            self._note_alive()
        return self._result()

    def _handle(self, kind: int, payload: Any) -> None:
        if kind == DONE:
            self._done(*payload)
        elif kind == KILL:
            self._kill(*payload)
        elif kind == READY:
            if payload.alive:
                payload.ready = True
        elif kind == QUEUE:
            self._queue_phase(self.models[payload.work.model_id], payload)
        elif kind == ARRIVE:
            self._arrive(payload)
        else:
            self._poll(payload)

    def _finished(self) -> bool:
        return all(r.done_at is not None for r in self.runs)

    def _tail_end(self) -> float:
        a = self.settings.autoscaler
        last = max(((r.done_at or 0.0) for r in self.runs), default=0.0)
        return last + a.cooldown_period_s + a.scale_down_stabilization_s + 10 * self.interval

    def _advance(self, t: float) -> None:
        self.worker_seconds += self.alive * (t - self.now)
        self.now = t

    def _note_alive(self) -> None:
        alive = sum(1 for m in self.models.values() for w in m.workers if w.alive)
        if alive != self.alive:
            self.alive = alive
            self.peak = max(self.peak, alive)
            self.series.append((self.now, alive))

    # -- work -----------------------------------------------------------------------------

    def _arrive(self, run: _Run) -> None:
        m = self.models[run.work.model_id]
        if run in m.between:
            m.between.remove(run)
        m.stages.append(run)
        self._queue_phase(m, run)
        self._schedule_poll(m)
        if self.conf.policy == "oasis-keda":  # the scaler pushes on a main task's arrival
            self._decide(m, push=True)

    def _queue_phase(self, m: _Model, run: _Run) -> None:
        durations = run.work.stages[run.stage].phases[run.phase]
        run.left = len(durations)
        m.queue.extend(_Task(run=run, duration=d) for d in durations)

    def _dispatch(self) -> None:
        for m in self.models.values():
            for w in m.workers:
                if not m.queue:
                    break
                if w.alive and w.ready and not w.stopping and w.task is None:
                    task = m.queue.popleft()
                    w.task, w.task_started = task, self.now
                    w.task_seq += 1
                    busy_for = task.duration + self.settings.task_overhead_s
                    self._at(self.now + busy_for, DONE, (w, w.task_seq))

    def _done(self, w: _Worker, seq: int) -> None:
        if w.task is None or w.task_seq != seq:
            return  # killed before it ended
        run = w.task.run
        w.task = None
        m = self.models[w.model]
        if w.stopping:
            w.alive = False
            m.workers.remove(w)
        run.left -= 1
        if run.left:
            return
        stage = run.work.stages[run.stage]
        if run.phase + 1 < len(stage.phases):
            run.phase += 1
            if self.settings.phase_delay_s > 0:
                self._at(self.now + self.settings.phase_delay_s, QUEUE, run)
            else:
                self._queue_phase(m, run)
            return
        m.stages.remove(run)
        if run.stage + 1 < len(run.work.stages):
            run.stage, run.phase = run.stage + 1, 0
            m.between.append(run)  # the next stage's mark replaces this one's at once
            self._at(self.now + run.work.stages[run.stage].gap_s, ARRIVE, run)
        else:
            run.done_at = self.now

    def _kill(self, w: _Worker, seq: int) -> None:
        if not w.alive or w.task is None or w.task_seq != seq:
            return
        m = self.models[w.model]
        self.killed += 1
        self.killed_s += self.now - w.task_started
        m.queue.appendleft(w.task)  # acks_late: the message is delivered again
        w.task, w.alive = None, False
        m.workers.remove(w)

    # -- scaling --------------------------------------------------------------------------

    def _poll(self, m: _Model) -> None:
        m.polled = False
        self._decide(m, push=False)
        if not m.idle or m.spec.min_replica_count > 0:
            self._schedule_next(m)

    def _schedule_next(self, m: _Model) -> None:
        m.polled = True
        self._at(self.now + self.interval, POLL, m)

    def _refresh_views(self) -> None:
        for m in self.models.values():
            m.view.state = m.model_state()
            arrivals = [r.work.arrival_s for r in m.stages]
            m.view.oldest_arrival = min(arrivals) if arrivals else None

    def _decide(self, m: _Model, *, push: bool) -> None:
        self._refresh_views()
        views = {k: v.view for k, v in self.models.items()}
        policy, spec, view = self.conf.policy, m.spec, m.view
        metric: float
        if policy == "oasis-keda":
            wanted, desired = pol.scaler_answers(views, self.conf.global_limit, self.now)[
                view.model_id
            ]
            metric = float(desired)
            if push:
                decision = keda.push(spec, view.auto, desired > 0, self.now)
            else:
                obs = keda.Observation(active=desired > 0, metric_total=metric, target=1.0)
                decision = keda.poll(spec, view.auto, obs, self.now)
            view.auto = decision.state
            replicas, reason = decision.replicas, decision.reason
        elif policy == "list-length":
            length = pol.list_length_of(self.conf, view.config)
            obs = pol.list_length_observation(length, view.state)
            wanted = math.ceil(view.state.waiting / length)
            metric = float(view.state.waiting)
            decision = keda.poll(spec, view.auto, obs, self.now)
            view.auto = decision.state
            replicas, reason = decision.replicas, decision.reason
        else:
            wanted = pol.controller_answers(views, self.conf.global_limit)[view.model_id]
            metric, replicas, reason = float(wanted), wanted, "Controller"
        self._apply(m, replicas)
        if self.settings.record_steps:
            s = view.state
            self.steps.append(
                Step(
                    at=self.now,
                    model_id=view.model_id,
                    source="push" if push else "poll",
                    waiting=s.waiting,
                    busy=s.busy,
                    main_tasks=s.main_tasks,
                    live=s.live,
                    wanted=wanted,
                    metric=metric,
                    replicas=replicas,
                    reason=reason,
                )
            )

    def _apply(self, m: _Model, replicas: int) -> None:
        if replicas > m.replicas:
            self.ups += 1
        elif replicas < m.replicas:
            self.downs += 1
        m.replicas = replicas
        running = [w for w in m.workers if not w.stopping]
        start_s = self.settings.worker_start_s
        if m.workers and self.settings.added_start_s is not None:
            start_s = self.settings.added_start_s
        for _ in range(replicas - len(running)):
            w = _Worker(model=m.view.model_id, started_at=self.now)
            m.workers.append(w)
            self._at(self.now + start_s, READY, w)
        excess = len(running) - replicas
        if excess <= 0:
            return
        key = pol.victim_key_ours if self.conf.policy == "oasis-keda" else pol.victim_key_plain
        running.sort(key=lambda w: key(w.ready, w.task is not None, w.started_at))
        for w in running[:excess]:
            w.stopping = True
            if w.task is None:  # starting or idle: the process ends at once
                w.alive = False
                m.workers.remove(w)
            else:
                self._at(self.now + self.conf.effective_grace_s, KILL, (w, w.task_seq))

    # -- the outcome ----------------------------------------------------------------------

    def _result(self) -> SimResult:
        first = min((r.work.arrival_s for r in self.runs), default=0.0)
        ends = [r.done_at for r in self.runs if r.done_at is not None]
        latencies = [r.done_at - r.work.arrival_s for r in self.runs if r.done_at is not None]
        return SimResult(
            name=self.conf.name,
            policy=self.conf.policy,
            analyses=len(self.runs),
            completed=len(ends),
            worker_seconds=self.worker_seconds,
            makespan_s=(max(ends) - first) if ends and len(ends) == len(self.runs) else math.inf,
            latency_p50_s=percentile(latencies, 0.50),
            latency_p95_s=percentile(latencies, 0.95),
            scale_ups=self.ups,
            scale_downs=self.downs,
            killed_tasks=self.killed,
            killed_work_s=self.killed_s,
            peak_workers=self.peak,
            series=tuple(self.series),
            steps=tuple(self.steps),
        )


def simulate(
    workload: Workload, configuration: pol.Configuration, settings: SimSettings | None = None
) -> SimResult:
    """Replay ``workload`` under ``configuration`` on the simulated clock."""
    return Simulation(workload, configuration, settings or SimSettings()).run()
