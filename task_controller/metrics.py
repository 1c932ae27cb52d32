"""The task controller's Prometheus metrics: stages dispatched, and their chunk counts."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_CHUNKS = Histogram(
    "oasis_keda_stage_chunks",
    "Chunks a dispatched stage was split into",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000),
)
DISPATCHES = Counter(
    "oasis_keda_stage_dispatches_total", "Stages dispatched, by outcome", ["stage", "outcome"]
)


def dispatched(stage: str, chunks: int) -> None:
    STAGE_CHUNKS.labels(stage=stage).observe(chunks)
    DISPATCHES.labels(stage=stage, outcome="sent").inc()


def failed(stage: str) -> None:
    DISPATCHES.labels(stage=stage, outcome="failed").inc()
