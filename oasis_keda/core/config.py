"""Per-model configuration schemas: scaling and chunking (Oasis v2 field names).

These are the validated shapes stored in the registry and served by the API. Validation
follows Oasis: integers only (``True`` and ``2.0`` are refused), ``>= 1`` for chunk fields,
``>= 0`` for worker counts, ``worker_count_min <= worker_count_max``, known enum values,
no unknown fields. A refusal raises :class:`ConfigError` naming each bad field.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from oasis_keda.core.errors import ConfigError


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


class ScalingConfig(_Config):
    """How many workers a model's queue gets (the strategies: docs/SCALER.md)."""

    scaling_strategy: ScalingStrategy = ScalingStrategy.FIXED_WORKERS
    worker_count_fixed: StrictInt = Field(default=1, ge=0)
    worker_count_max: StrictInt = Field(default=10, ge=0)
    worker_count_min: StrictInt = Field(default=0, ge=0)
    chunks_per_worker: StrictInt = Field(default=10, ge=1)

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
