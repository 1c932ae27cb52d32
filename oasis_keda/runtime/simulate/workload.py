"""A workload for the what-if simulator: models and the analyses sent to them. Pure.

A workload is JSON lines (docs/SIMULATOR.md has the format): one ``model`` line per model
(its scaling configuration) and one ``analysis`` line per analysis. An analysis is a list of
stages; a stage is a list of *phases* run one after another, each phase a list of sub-task
durations that are queued together (the steps before the chunks are one-task phases, the
chunks one phase, the steps after one-task phases again), as the controller's canvas
queues them. The first stage arrives ``arrival_s`` seconds after the workload starts; each
next stage is requested ``gap_s`` seconds after the one before it ended.

:func:`generate` makes a synthetic workload from a seed (Poisson arrivals, chunk counts and
lognormal chunk durations), so a what-if needs no recorded history.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from oasis_keda.core.config import ScalingConfig, parse_config

FORMAT_VERSION = 1
#: Platform timings a ``timings`` line may give (measured by the export).
TIMINGS = ("worker_start_s", "task_overhead_s", "phase_delay_s")


class WorkloadError(ValueError):
    """A workload file that cannot be read."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageWork:
    """One stage of an analysis: phases of sub-task durations, run in order."""

    stage: str
    phases: tuple[tuple[float, ...], ...]
    gap_s: float = 0.0
    """Seconds between the previous stage's end and this stage's request (0 for the first)."""

    @property
    def chunks(self) -> int:
        return max((len(p) for p in self.phases), default=0)

    @property
    def work_s(self) -> float:
        return sum(sum(p) for p in self.phases)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnalysisWork:
    """One analysis: its model, its arrival and its stages."""

    analysis_id: int
    model_id: str
    arrival_s: float
    stages: tuple[StageWork, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Workload:
    """Models with their recorded scaling configuration, and the analyses sent to them."""

    models: dict[str, ScalingConfig]
    analyses: tuple[AnalysisWork, ...]
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    """Platform timings measured where the workload was recorded (keys: :data:`TIMINGS`)."""

    @property
    def work_s(self) -> float:
        return sum(s.work_s for a in self.analyses for s in a.stages)


def _stage_dict(stage: StageWork) -> dict[str, Any]:
    return {
        "stage": stage.stage,
        "chunks": stage.chunks,
        "gap_s": stage.gap_s,
        "phases": [list(p) for p in stage.phases],
    }


def to_lines(workload: Workload) -> Iterator[str]:
    """The workload as JSON lines (timings, models, then analyses by arrival)."""
    if workload.timings:
        yield json.dumps({"kind": "timings", **workload.timings})
    for model_id, scaling in sorted(workload.models.items()):
        yield json.dumps(
            {
                "kind": "model",
                "version": FORMAT_VERSION,
                "model_id": model_id,
                "scaling": scaling.model_dump(mode="json"),
            }
        )
    for a in sorted(workload.analyses, key=lambda a: (a.arrival_s, a.analysis_id)):
        yield json.dumps(
            {
                "kind": "analysis",
                "analysis_id": a.analysis_id,
                "model_id": a.model_id,
                "arrival_s": round(a.arrival_s, 6),
                "stages": [_stage_dict(s) for s in a.stages],
            }
        )


def write(workload: Workload, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in to_lines(workload)))
    return path


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise WorkloadError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def _stage(raw: Any, where: str) -> StageWork:
    if not isinstance(raw, dict) or not isinstance(raw.get("phases"), list):
        raise WorkloadError(f"{where}: a stage needs a list of phases")
    phases = []
    for i, phase in enumerate(raw["phases"]):
        if not isinstance(phase, list) or not phase:
            raise WorkloadError(f"{where}.phases[{i}]: a non-empty list of durations")
        phases.append(tuple(_number(d, f"{where}.phases[{i}]") for d in phase))
    if not phases:
        raise WorkloadError(f"{where}: a stage needs at least one phase")
    return StageWork(
        stage=str(raw.get("stage", "stage")),
        phases=tuple(phases),
        gap_s=_number(raw.get("gap_s", 0.0), f"{where}.gap_s"),
    )


def from_lines(lines: Iterable[str]) -> Workload:
    """Parse JSON lines (blank lines and ``#`` comments are skipped)."""
    models: dict[str, ScalingConfig] = {}
    analyses: list[AnalysisWork] = []
    timings: dict[str, float] = {}
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"line {n}: not JSON ({exc})") from exc
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind == "timings":
            for key in TIMINGS:
                if key in raw:
                    timings[key] = _number(raw[key], f"line {n}: {key}")
        elif kind == "model":
            models[str(raw["model_id"])] = parse_config(ScalingConfig, raw.get("scaling") or {})
        elif kind == "analysis":
            stages = raw.get("stages")
            if not isinstance(stages, list) or not stages:
                raise WorkloadError(f"line {n}: an analysis needs a list of stages")
            analyses.append(
                AnalysisWork(
                    analysis_id=int(raw.get("analysis_id", len(analyses) + 1)),
                    model_id=str(raw.get("model_id", "model")),
                    arrival_s=_number(raw.get("arrival_s", 0.0), f"line {n}: arrival_s"),
                    stages=tuple(_stage(s, f"line {n}: stages[{i}]") for i, s in enumerate(stages)),
                )
            )
        else:
            raise WorkloadError(
                f"line {n}: kind must be 'timings', 'model' or 'analysis', got {kind!r}"
            )
    if not analyses:
        raise WorkloadError("the workload has no analysis")
    for a in analyses:
        models.setdefault(a.model_id, ScalingConfig())
    return Workload(models=models, analyses=tuple(analyses), timings=timings)


def read(path: Path) -> Workload:
    """Read a workload file: JSON lines, or one JSON list of the same objects."""
    text = path.read_text()
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{path}: not JSON ({exc})") from exc
        return from_lines(json.dumps(item) for item in items)
    return from_lines(text.splitlines())


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeneratorSettings:
    """A synthetic workload: analyses arriving at random, each an inputs and a loss stage."""

    analyses: int = 100
    mean_interarrival_s: float = 30.0
    """Mean of the exponential time between two arrivals (a Poisson process)."""
    lookup_chunks: tuple[int, int] = (2, 8)
    """Inclusive range of lookup chunks per analysis."""
    loss_chunks: tuple[int, int] = (2, 12)
    chunk_median_s: float = 6.0
    """Median duration of a chunk (lognormal)."""
    chunk_sigma: float = 0.4
    """Sigma of the chunk durations' lognormal (0: every chunk takes the median)."""
    step_s: float = 1.0
    """Duration of each step before and after the chunks."""
    gap_s: float = 0.5
    """Seconds between the inputs stage's end and the loss stage's request."""
    model_id: str = "model"
    seed: int = 0


def generate(settings: GeneratorSettings, scaling: ScalingConfig | None = None) -> Workload:
    """A reproducible synthetic workload (same settings and seed, same workload)."""
    rng = random.Random(settings.seed)
    t = 0.0
    analyses = []

    def chunks(bounds: tuple[int, int]) -> tuple[float, ...]:
        count = rng.randint(*bounds)
        return tuple(
            round(rng.lognormvariate(0.0, settings.chunk_sigma) * settings.chunk_median_s, 3)
            for _ in range(count)
        )

    step = (settings.step_s,)
    for k in range(1, settings.analyses + 1):
        inputs = StageWork(
            stage="inputs", phases=(step, chunks(settings.lookup_chunks), step, step)
        )
        losses = StageWork(
            stage="losses",
            phases=(step, chunks(settings.loss_chunks), step),
            gap_s=settings.gap_s,
        )
        analyses.append(
            AnalysisWork(
                analysis_id=k,
                model_id=settings.model_id,
                arrival_s=round(t, 3),
                stages=(inputs, losses),
            )
        )
        t += rng.expovariate(1.0 / settings.mean_interarrival_s)
    return Workload(
        models={settings.model_id: scaling or ScalingConfig()}, analyses=tuple(analyses)
    )


def planned_subtasks(work: AnalysisWork, stage: int, phase: int, left: int, *, queued: bool) -> int:
    """Sub-tasks the controller has planned for an analysis and not finished: the current
    phase's ``left``, its later phases, and its later stages (a generate-and-run records the
    loss stage's expected count when it plans its inputs). ``queued=False``: between two
    stages, the whole of stage ``stage`` and those after it."""
    stages = work.stages
    if not queued:
        return sum(len(p) for st in stages[stage:] for p in st.phases)
    later_phases = sum(len(p) for p in stages[stage].phases[phase + 1 :])
    later_stages = sum(len(p) for st in stages[stage + 1 :] for p in st.phases)
    return left + later_phases + later_stages
