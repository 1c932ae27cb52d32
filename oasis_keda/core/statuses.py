"""Analysis and sub-task statuses: the one definition the controller, workers, API and CLI use.

The names are the Oasis v2 API's (an analysis's ``status``, a sub-task's ``status``), so an
Oasis client reads them unchanged. The derived sets answer the questions the components ask
about an analysis: is a stage in progress (it may be cancelled, not deleted or requested
again), or did the last request end. Pure: no I/O, standard library only, so the stage
specifications (:mod:`oasis_keda.core.stages`) and the records tables both build on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class AnalysisStatus(StrEnum):
    NEW = "NEW"
    INPUTS_GENERATION_ERROR = "INPUTS_GENERATION_ERROR"
    INPUTS_GENERATION_NO_KEYS = "INPUTS_GENERATION_NO_KEYS"
    INPUTS_GENERATION_CANCELLED = "INPUTS_GENERATION_CANCELLED"
    INPUTS_GENERATION_STARTED = "INPUTS_GENERATION_STARTED"
    INPUTS_GENERATION_QUEUED = "INPUTS_GENERATION_QUEUED"
    READY = "READY"
    RUN_QUEUED = "RUN_QUEUED"
    RUN_STARTED = "RUN_STARTED"
    RUN_COMPLETED = "RUN_COMPLETED"
    RUN_CANCELLED = "RUN_CANCELLED"
    RUN_ERROR = "RUN_ERROR"


class SubTaskStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


# The sets hold plain strings (the values stored in the records database), so they compare,
# sort, print and bind to SQL exactly as the status column's values do.

#: A stage is queued or running: the analysis can be cancelled, not deleted or re-requested.
IN_PROGRESS: Final = frozenset(
    s.value
    for s in (
        AnalysisStatus.INPUTS_GENERATION_QUEUED,
        AnalysisStatus.INPUTS_GENERATION_STARTED,
        AnalysisStatus.RUN_QUEUED,
        AnalysisStatus.RUN_STARTED,
    )
)
#: The last request ended (completed, failed or cancelled): neither NEW nor in progress.
FINAL: Final = frozenset(s.value for s in AnalysisStatus) - IN_PROGRESS - {AnalysisStatus.NEW.value}
#: Every status but a stage in progress (from these, inputs may be generated).
IDLE: Final = FINAL | {AnalysisStatus.NEW.value}

#: Sub-task statuses after which a sub-task record changes no more.
SUBTASK_FINAL: Final = frozenset(
    s.value for s in (SubTaskStatus.COMPLETED, SubTaskStatus.ERROR, SubTaskStatus.CANCELLED)
)
