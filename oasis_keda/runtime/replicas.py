"""What the local autoscaler decided, as samples and as the per-model record in Redis.

Every decision of the local autoscaler becomes a :class:`ScalingSample`: the demo draws
workers over time from them (:mod:`oasis_keda.runtime.plots`), ``up`` appends them to
``<storage>/run/autoscaler-samples.jsonl``, and the latest one per model is published to
Redis (hash ``keys.RUNTIME_REPLICAS``, JSON per model) so that ``oasis-keda status``, a
separate process, can show desired and actual workers. This module owns that record's
format on both sides: writing it and reading it back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import redis

from oasis_keda.core import keys

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ScalingSample:
    """One autoscaler decision, for the workers-over-time picture."""

    at: float
    """Wall-clock time (Unix seconds)."""
    model_id: str
    metric: float | None
    """The scaler's metric (desired workers per the scaling strategy); None on error."""
    desired: int
    """Replicas the autoscaler set (the Deployment's ``spec.replicas``)."""
    actual: int
    """Live worker processes, including those finishing a chunk after SIGTERM."""
    reason: str


def publish_sample(client: redis.Redis, sample: ScalingSample, *, active: bool) -> None:
    """Make ``sample`` the model's published state; a Redis error is only logged.

    The record is the sample without its model id (the hash field) plus ``active``
    (whether KEDA has seen the model's trigger active since it was added).
    """
    payload = dataclasses.asdict(sample) | {"active": active}
    payload.pop("model_id")
    try:
        client.hset(keys.RUNTIME_REPLICAS, sample.model_id, json.dumps(payload))
    except redis.RedisError as exc:
        logger.debug("could not publish replicas of %s: %s", sample.model_id, exc)


def read_runtime_replicas(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Desired and actual workers per model as the local autoscaler last published them.

    ``{model_id: {"desired", "actual", "metric", "active", "reason", "at"}}``; empty when no
    local runtime runs (in a cluster, ask the HPA). For ``oasis-keda status``.
    """
    result: dict[str, dict[str, Any]] = {}
    for raw_id, raw in client.hgetall(keys.RUNTIME_REPLICAS).items():
        model_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        try:
            result[model_id] = json.loads(raw)
        except (TypeError, ValueError):
            continue  # a record this version cannot read: leave it out
    return result
