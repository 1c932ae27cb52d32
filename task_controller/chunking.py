"""Chunk planning: how many sub-tasks a lookup or loss stage is split into.

PURE: (chunking configuration, location rows or event count) -> chunk count, by the Oasis
v2 rules (``FIXED_CHUNKS``: the configured count; ``DYNAMIC_CHUNKS``: rows or events divided
by the configured number per chunk, rounded up) plus the clamps Oasis forgets: a FIXED lookup
never has more chunks than rows, a FIXED loss run never more chunks than events, DYNAMIC
counts are capped by ``dynamic_chunks_max``, and no stage has more than
:data:`~oasis_keda.core.config.MAX_CHUNKS` chunks (a plan above it is refused, whatever the
configuration it came from). Zero is a value, never "missing" (an Oasis
bug): only ``None`` means unknown. Nothing here touches Redis, Celery, files or clocks, so
the CLI, the API and the controller all refuse a bad request with the same message.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

from oasis_keda.core.config import MAX_CHUNKS

FIXED = "FIXED_CHUNKS"
DYNAMIC = "DYNAMIC_CHUNKS"


class PlanError(ValueError):
    """A stage cannot be planned; ``field`` names the configuration field or input at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ChunkingSettings(Protocol):
    """The fields of ``oasis_keda.core.config.ChunkingConfig`` the planner reads."""

    @property
    def lookup_strategy(self) -> str: ...
    @property
    def loss_strategy(self) -> str: ...
    @property
    def fixed_lookup_chunks(self) -> int: ...
    @property
    def fixed_analysis_chunks(self) -> int: ...
    @property
    def dynamic_locations_per_lookup(self) -> int: ...
    @property
    def dynamic_events_per_analysis(self) -> int: ...
    @property
    def dynamic_chunks_max(self) -> int: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChunkPlan:
    """The planned split of one stage."""

    stage: str
    """``"inputs"`` (lookup) or ``"losses"``."""
    strategy: str
    """``FIXED_CHUNKS`` or ``DYNAMIC_CHUNKS``."""
    chunks: int
    """Number of chunk sub-tasks (>= 1); 1 means the stage is not split."""
    basis: int | None
    """Location rows (inputs) or events (losses) the count was derived from; None = unknown."""

    @property
    def single(self) -> bool:
        """One chunk: the task is not split and may use every core of its worker."""
        return self.chunks == 1


def _strategy(value: str, field: str) -> str:
    text = str(getattr(value, "value", value))
    if text not in (FIXED, DYNAMIC):
        raise PlanError(field, f"unknown strategy {text!r}, expected {FIXED} or {DYNAMIC}")
    return text


def _positive(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(field, f"must be an integer >= 1, got {value!r}")
    return value


def _bounded(chunks: int, field: str) -> int:
    """The planned count, refused above :data:`MAX_CHUNKS`."""
    if chunks > MAX_CHUNKS:
        raise PlanError(
            field, f"{chunks} chunks planned: a stage may have at most {MAX_CHUNKS} chunks"
        )
    return chunks


def plan_lookup(config: ChunkingSettings, location_rows: int) -> ChunkPlan:
    """Chunks for input generation over a location file with ``location_rows`` rows."""
    strategy = _strategy(config.lookup_strategy, "lookup_strategy")
    if isinstance(location_rows, bool) or not isinstance(location_rows, int):
        raise PlanError("location_file", f"row count must be an integer, got {location_rows!r}")
    if location_rows < 1:
        raise PlanError("location_file", "the location file has no data rows")
    if strategy == FIXED:
        wanted = _positive(config.fixed_lookup_chunks, "fixed_lookup_chunks")
        chunks = _bounded(min(wanted, location_rows), "fixed_lookup_chunks")
    else:
        per_chunk = _positive(config.dynamic_locations_per_lookup, "dynamic_locations_per_lookup")
        cap = _positive(config.dynamic_chunks_max, "dynamic_chunks_max")
        chunks = _bounded(min(math.ceil(location_rows / per_chunk), cap), "dynamic_chunks_max")
    return ChunkPlan(stage="inputs", strategy=strategy, chunks=chunks, basis=location_rows)


def plan_losses(config: ChunkingSettings, number_of_events: int | None) -> ChunkPlan:
    """Chunks for a loss run over an event set of ``number_of_events`` (None = unknown).

    DYNAMIC chunking needs the event count: without it the request is refused (Oasis
    answers HTTP 400), before anything is queued.
    """
    strategy = _strategy(config.loss_strategy, "loss_strategy")
    if number_of_events is not None:
        if isinstance(number_of_events, bool) or not isinstance(number_of_events, int):
            raise PlanError("number_of_events", f"must be an integer, got {number_of_events!r}")
        if number_of_events < 1:
            raise PlanError(
                "number_of_events",
                f"the event set has {number_of_events} events: nothing to run",
            )
    if strategy == FIXED:
        wanted = _positive(config.fixed_analysis_chunks, "fixed_analysis_chunks")
        chunks = wanted if number_of_events is None else min(wanted, number_of_events)
        chunks = _bounded(chunks, "fixed_analysis_chunks")
    else:
        if number_of_events is None:
            raise PlanError(
                "loss_strategy",
                "DYNAMIC_CHUNKS needs the event set's number_of_events in the model settings "
                "(model_settings.event_set.options[].number_of_events); it is missing",
            )
        per_chunk = _positive(config.dynamic_events_per_analysis, "dynamic_events_per_analysis")
        cap = _positive(config.dynamic_chunks_max, "dynamic_chunks_max")
        chunks = _bounded(min(math.ceil(number_of_events / per_chunk), cap), "dynamic_chunks_max")
    return ChunkPlan(stage="losses", strategy=strategy, chunks=chunks, basis=number_of_events)
