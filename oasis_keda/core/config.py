"""Per-model configuration schemas: scaling and chunking (Oasis v2 field names).

These are the validated shapes stored in the registry and served by the API. Validation
follows Oasis: integers only (``True`` and ``2.0`` are refused), ``>= 1`` for chunk fields,
``>= 0`` for worker counts, ``worker_count_min <= worker_count_max``, known enum values,
no unknown fields. Beyond Oasis, every number has a maximum (:data:`MAXIMUM`): worker
counts at most :data:`MAX_WORKERS` (a Kubernetes int32 replica count, and the most the
global worker limit may be), chunk counts and ``chunks_per_worker`` at most
:data:`MAX_CHUNKS`, chunk sizes at most :data:`MAX_PER_CHUNK`. A refusal raises
:class:`ConfigError` naming each bad field; the CLI and the API both print its messages, so
they refuse the same values with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oasis_keda.core.errors import ConfigError

#: The most workers one model may ask for, and the most the global worker limit may be: far
#: inside a Kubernetes int32 replica count, and above any cluster's pod capacity.
MAX_WORKERS = 10_000
#: The most chunks one stage may be split into (each is a sub-task row and a message), and
#: the most ``chunks_per_worker`` may be.
MAX_CHUNKS = 10_000
#: The most locations or events one chunk may be sized for (oasislmf's ids are int32).
MAX_PER_CHUNK = 2**31 - 1

#: Field -> (maximum, what the maximum is), for every numeric configuration field.
MAXIMUM: dict[str, tuple[int, str]] = {
    "worker_count_fixed": (MAX_WORKERS, "the most workers a model may have"),
    "worker_count_max": (MAX_WORKERS, "the most workers a model may have"),
    "worker_count_min": (MAX_WORKERS, "the most workers a model may have"),
    "chunks_per_worker": (MAX_CHUNKS, "the most chunks a stage may have"),
    "fixed_lookup_chunks": (MAX_CHUNKS, "the most chunks a stage may have"),
    "fixed_analysis_chunks": (MAX_CHUNKS, "the most chunks a stage may have"),
    "dynamic_chunks_max": (MAX_CHUNKS, "the most chunks a stage may have"),
    "dynamic_locations_per_lookup": (MAX_PER_CHUNK, "an int32"),
    "dynamic_events_per_analysis": (MAX_PER_CHUNK, "an int32"),
}


def check_maximum(field: str, value: int) -> int:
    """``value`` if it is within ``field``'s maximum; else ValueError with the message."""
    high, why = MAXIMUM[field]
    if value > high:
        raise ValueError(f"must be at most {high} ({why}), got {value}")
    return value


class ScalingStrategy(StrEnum):
    FIXED_WORKERS = "FIXED_WORKERS"
    QUEUE_LOAD = "QUEUE_LOAD"
    DYNAMIC_TASKS = "DYNAMIC_TASKS"


class ChunkingStrategy(StrEnum):
    FIXED_CHUNKS = "FIXED_CHUNKS"
    DYNAMIC_CHUNKS = "DYNAMIC_CHUNKS"


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @field_validator("*", mode="after")
    @classmethod
    def _not_above_maximum(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in MAXIMUM and isinstance(value, int):
            check_maximum(info.field_name, value)
        return value


class ScalingConfig(_Config):
    """How many workers a model's queue gets (the strategies: docs/SCALER.md)."""

    scaling_strategy: ScalingStrategy = ScalingStrategy.FIXED_WORKERS
    worker_count_fixed: StrictInt = Field(default=1, ge=0)
    worker_count_max: StrictInt = Field(default=10, ge=0)
    worker_count_min: StrictInt = Field(default=0, ge=0)
    chunks_per_worker: StrictInt = Field(default=10, ge=1)
    count_planned: StrictBool = False
    """DYNAMIC_TASKS: count the planned sub-tasks not finished yet (those of a stage being
    planned, and of the loss stage a generate-and-run will request), not only the ones
    queued or running. Off by default: the Oasis formula counts only the queue."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.worker_count_min > self.worker_count_max:
            raise ValueError(
                f"worker_count_min ({self.worker_count_min}) must not exceed "
                f"worker_count_max ({self.worker_count_max})"
            )
        return self


class ChunkingConfig(_Config):
    """How each analysis stage is split into sub-tasks."""

    lookup_strategy: ChunkingStrategy = ChunkingStrategy.FIXED_CHUNKS
    loss_strategy: ChunkingStrategy = ChunkingStrategy.FIXED_CHUNKS
    fixed_lookup_chunks: StrictInt = Field(default=1, ge=1)
    fixed_analysis_chunks: StrictInt = Field(default=1, ge=1)
    dynamic_locations_per_lookup: StrictInt = Field(default=10000, ge=1)
    dynamic_events_per_analysis: StrictInt = Field(default=1, ge=1)
    dynamic_chunks_max: StrictInt = Field(default=200, ge=1)


C = TypeVar("C", bound=_Config)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or _cross_field_name(err["msg"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        errors.setdefault(loc, msg)
    return errors


def _cross_field_name(msg: str) -> str:
    # Model-level validators have no location; their message starts with the field name.
    return msg.removeprefix("Value error, ").split(" ", 1)[0]


def parse_config(cls: type[C], data: Mapping[str, Any]) -> C:
    """Validate a whole configuration; raise :class:`ConfigError` naming bad fields."""
    if not isinstance(data, Mapping):
        raise ConfigError({"non_field_errors": "configuration must be a JSON object"})
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_field_errors(exc)) from exc


def update_config(current: C, changes: Mapping[str, Any]) -> C:
    """Apply a partial update: only the given fields change; the result is validated whole."""
    if not isinstance(changes, Mapping):
        raise ConfigError({"non_field_errors": "configuration must be a JSON object"})
    merged = {**current.to_json_dict(), **dict(changes)}
    return parse_config(type(current), merged)
