"""The analysis stages as Oasis names them: their sub-task slugs, task names and statuses.

PURE data shared by the controller (which plans and dispatches) and the workers (which run
and record), with the statuses of :mod:`oasis_keda.core.statuses`. A stage is a fixed shape:
steps before the chunks, N chunks (a chord header), steps after them. Inputs and losses are
the stages; :func:`register_stage` adds one for a process (only the test hooks do).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, TypedDict

from oasis_keda.core.statuses import IDLE, IN_PROGRESS
from oasis_keda.core.statuses import AnalysisStatus as S

INPUTS: Final = "inputs"
LOSSES: Final = "losses"

# Analysis statuses from which a request may start each stage, as the Oasis v2 API allows:
# inputs from any status but a stage in progress; losses once inputs exist (READY) or
# after an earlier run ended, however it ended.
GENERATE_ALLOWED_FROM: Final = IDLE
RUN_ALLOWED_FROM: Final = frozenset(
    s.value for s in (S.READY, S.RUN_COMPLETED, S.RUN_ERROR, S.RUN_CANCELLED)
)

TASK_PREFIX: Final = "oasis_keda.worker."
#: Controller task a worker sends when a generate-and-run's inputs are READY.
REQUEST_RUN_TASK: Final = "oasis_keda.controller.request_run"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Step:
    """One sub-task kind of a stage."""

    slug: str
    """Oasis slug; chunk steps get ``-{k}`` appended."""
    name: str
    """Human name; chunk steps get `` {k}`` appended."""
    task: str
    """Celery task name."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageSpec:
    """A stage: steps before the chunks, the chunk step (a chord header), steps after.

    Steps after the chunks run one after another, but those named in ``side_by_side`` (a
    run of neighbours, neither the first nor the last step after the chunks): they run
    beside each other, each given the result of the step before them, and the step after
    them gets the list of their results.
    """

    stage: str
    before: tuple[Step, ...]
    chunk: Step
    after: tuple[Step, ...]
    side_by_side: frozenset[str] = frozenset()
    allowed_from: frozenset[str]
    queued: str
    started: str
    done: str
    error: str
    cancelled: str

    def __post_init__(self) -> None:
        if not self.side_by_side:
            return
        slugs = [s.slug for s in self.after]
        where = [i for i, slug in enumerate(slugs) if slug in self.side_by_side]
        if (
            len(where) != len(self.side_by_side)
            or where != list(range(where[0], where[0] + len(where)))
            or where[0] == 0
            or where[-1] == len(slugs) - 1
        ):
            raise ValueError(
                f"stage {self.stage!r}: side_by_side {sorted(self.side_by_side)} must be "
                "neighbouring steps after the chunks, neither the first nor the last"
            )

    def after_groups(self) -> list[tuple[Step, ...]]:
        """The steps after the chunks as they run: one after another, each a group of one
        step or of the steps that run side by side."""
        groups: list[tuple[Step, ...]] = []
        for s in self.after:
            if groups and s.slug in self.side_by_side and groups[-1][0].slug in self.side_by_side:
                groups[-1] = (*groups[-1], s)
            else:
                groups.append((s,))
        return groups

    @property
    def active(self) -> frozenset[str]:
        """Statuses in which the stage is in progress."""
        return frozenset({self.queued, self.started})

    def slugs(self, chunks: int) -> list[str]:
        """Every sub-task slug, in dispatch order, for ``chunks`` chunks."""
        return (
            [s.slug for s in self.before]
            + [f"{self.chunk.slug}-{k}" for k in range(1, chunks + 1)]
            + [s.slug for s in self.after]
        )


def step(slug: str, name: str) -> Step:
    """A step whose Celery task is named after its slug."""
    return Step(slug=slug, name=name, task=TASK_PREFIX + slug.replace("-", "_"))


INPUTS_SPEC: Final = StageSpec(
    stage=INPUTS,
    before=(step("prepare-input-generation-params", "Prepare input generation params"),),
    chunk=step("prepare-keys-file", "Prepare keys file"),
    after=(
        step("collect-keys", "Collect keys"),
        step("write-input-files", "Write input files"),
        step("write-fm-input-files", "Write FM input files"),
        step("cleanup-input-generation", "Cleanup input generation"),
    ),
    # oasislmf's GUL and FM input files, written side by side (worker/input_files.py)
    side_by_side=frozenset({"write-input-files", "write-fm-input-files"}),
    allowed_from=GENERATE_ALLOWED_FROM,
    queued=S.INPUTS_GENERATION_QUEUED.value,
    started=S.INPUTS_GENERATION_STARTED.value,
    done=S.READY.value,
    error=S.INPUTS_GENERATION_ERROR.value,
    cancelled=S.INPUTS_GENERATION_CANCELLED.value,
)

LOSSES_SPEC: Final = StageSpec(
    stage=LOSSES,
    before=(step("prepare-losses-generation-directory", "Prepare losses generation directory"),),
    chunk=step("generate-losses-chunk", "Generate losses chunk"),
    after=(
        step("generate-losses-output", "Generate losses output"),
        step("cleanup-losses-generation", "Cleanup losses generation"),
    ),
    allowed_from=RUN_ALLOWED_FROM,
    queued=S.RUN_QUEUED.value,
    started=S.RUN_STARTED.value,
    done=S.RUN_COMPLETED.value,
    error=S.RUN_ERROR.value,
    cancelled=S.RUN_CANCELLED.value,
)

#: Every stage by name: inputs and losses, and those registered beside them.
SPECS: Final[dict[str, StageSpec]] = {spec.stage: spec for spec in (INPUTS_SPEC, LOSSES_SPEC)}


def register_stage(spec: StageSpec) -> None:
    """Add a stage beside inputs and losses, for this process. Production registers none:
    only the test hooks do (their trivial stage, see docs/CONTROLLER.md); a stage must be
    registered in every process that requests, dispatches or runs it."""
    existing = SPECS.get(spec.stage)
    if existing is not None and existing != spec:
        raise ValueError(f"another stage {spec.stage!r} is already registered")
    SPECS[spec.stage] = spec


def spec_for(stage: str) -> StageSpec:
    try:
        return SPECS[stage]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}") from None


def stage_of_status(status: str) -> StageSpec | None:
    """The real stage (inputs or losses) a status belongs to while it is in progress."""
    if status not in IN_PROGRESS:
        return None
    for spec in (INPUTS_SPEC, LOSSES_SPEC):
        if status in spec.active:
            return spec
    return None


class Job(TypedDict):
    """The JSON job every sub-task of a stage receives: all a worker needs, so that it never
    reads the model registry."""

    analysis_id: int
    run_number: int
    stage: str
    model_id: str
    model_dir: str | None
    """Absolute path of the oasislmf model directory."""
    queue: str
    num_chunks: int
    run_root: str
    """Absolute path of ``<storage>/analyses/<id>/runs/<n>``."""
    location_file: str | None
    accounts_file: str | None
    ri_info_file: str | None
    ri_scope_file: str | None
    currency_conversion_json: str | None
    """Absolute path of the portfolio's currency conversion settings, if any."""
    reporting_currency: str | None
    settings_file: str | None
    """Absolute path of the run's ``analysis_settings.json``."""
    input_dir: str | None
    """Losses: the inputs directory written by the generate run."""
    events: int | None
    options: dict[str, Any]
    """Request options: ``then_run`` (generate-and-run); with the test hooks loaded, also
    theirs (docs/CONTROLLER.md). Options nothing reads are ignored."""
