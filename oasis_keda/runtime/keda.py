"""KEDA's 0 <-> 1 rules and metrics fallback, and one local polling step, as pure functions.

In a cluster KEDA owns the step between no workers and some, and the HPA the steps between
1 and N. This module transcribes KEDA's part, rule for rule:

* the scale executor (``RequestScale``): 0 -> max(minReplicaCount, 1) as soon as a trigger
  is active (poll or push), N -> minReplicaCount (or idleReplicaCount) once the triggers
  have been inactive for longer than ``cooldownPeriod``, and *hold* on scaler errors
  instead of scaling in;
* the metrics fallback (``GetMetricsWithFallback``): errors in a row are counted, and once
  there are more than ``fallback.failureThreshold`` of them the HPA is served
  ``fallback.replicas x target`` (per ``fallback.behavior``); without a fallback the HPA
  gets an error and holds.

:func:`poll` is one polling interval of the local autoscaler: KEDA's step, then an HPA sync
(:mod:`oasis_keda.runtime.hpa`) on what it left; :func:`push` is a pushed activation, which
only KEDA sees. The state both carry (:class:`AutoscalerState`) is everything KEDA and the
HPA remember about one scale target. Pure like the HPA module: ``now`` is passed in and a
new immutable state comes back.
"""

from __future__ import annotations

import dataclasses

from oasis_keda.runtime.hpa import HpaState, hpa_reconcile, to_milli
from oasis_keda.runtime.spec import ScaledObjectSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoscalerState:
    """Everything KEDA and the HPA remember about one scale target."""

    replicas: int = 0
    """The scale target's ``spec.replicas`` (desired workers)."""
    created_at: float = 0.0
    """When the ScaledObject was created (``initialCooldownPeriod`` counts from here)."""
    last_active_at: float | None = None
    """KEDA ``status.lastActiveTime``: the last time a trigger was seen active."""
    failures: int = 0
    """KEDA ``status.health[metric].numberOfFailures``: scaler errors in a row."""
    target: float = 1.0
    """The last metric target the scaler announced (GetMetricSpec)."""
    hpa: HpaState = dataclasses.field(default_factory=HpaState)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Observation:
    """One poll of the scaler: GetMetricSpec, GetMetrics and IsActive, or an error."""

    active: bool = False
    metric_total: float = 0.0
    """Sum of the metric values GetMetrics returned."""
    target: float = 1.0
    """The metric target GetMetricSpec returned (> 0)."""
    error: bool = False
    """True when any of the three calls failed (then the other fields are ignored)."""


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of one step: the replicas to run and the state to carry on."""

    replicas: int
    state: AutoscalerState
    reason: str
    metric_replicas: int | None = None
    """The HPA's raw proposal from the metric (before stabilization and limits), if any."""


def fallback_replicas(spec: ScaledObjectSpec, current: int) -> int:
    """``doFallback``: the replica count the fallback metric stands for."""
    assert spec.fallback is not None
    wanted = spec.fallback.replicas
    behavior = spec.fallback.behavior
    if behavior == "currentReplicas":
        return current
    if behavior == "currentReplicasIfHigher":
        return max(current, wanted)
    if behavior == "currentReplicasIfLower":
        return min(current, wanted)
    return wanted


def metrics_with_fallback(
    spec: ScaledObjectSpec, state: AutoscalerState, obs: Observation
) -> tuple[int | None, int, bool]:
    """``GetMetricsWithFallback``: ``(usage milli or None, failures in a row, fell back)``.

    A success resets the count. On an error without a usable fallback the HPA gets the
    error (None: it holds); with one, the count grows and once it exceeds
    ``failureThreshold`` the HPA gets ``fallback replicas x target`` instead.
    """
    if not obs.error:
        return to_milli(obs.metric_total), 0, False
    if not spec.fallback_enabled or spec.fallback is None:
        return None, state.failures, False
    failures = state.failures + 1
    if failures > spec.fallback.failure_threshold:
        replicas = fallback_replicas(spec, state.replicas)
        return replicas * to_milli(state.target), failures, True
    return None, failures, False


def _cooled_down(spec: ScaledObjectSpec, state: AutoscalerState, now: float) -> bool:
    """Inactive for longer than ``cooldownPeriod`` (``initialCooldownPeriod`` from creation
    when no trigger was ever active)."""
    if state.last_active_at is None:
        return state.created_at + spec.initial_cooldown_period_s < now
    return state.last_active_at + spec.cooldown_period_s < now


def keda_request_scale(
    spec: ScaledObjectSpec, state: AutoscalerState, *, active: bool, error: bool, now: float
) -> tuple[int, float | None, str]:
    """KEDA's ``RequestScale``: ``(replicas, lastActiveTime, reason)``; 0 <-> 1 only."""
    current = state.replicas
    minimum = spec.min_replica_count
    idle = spec.idle_replica_count
    if active:  # wake from 0, or from idleReplicaCount up to the minimum
        if (idle is not None and current < minimum) or current == 0:
            return max(minimum, 1), now, "Activated"
        if error:
            return current, state.last_active_at, "PartialTriggerError"
        return current, now, "Active"
    # Inactive with a scaler error: hold, unless a fallback of 0 replicas lets the cooldown act.
    if error and spec.fallback is not None and spec.fallback.replicas != 0:
        return current, state.last_active_at, "TriggerErrorFallback"
    if error and spec.fallback is None:
        return current, state.last_active_at, "TriggerError"
    # Inactive: down to idleReplicaCount (or minReplicaCount) once cooled down.
    if (idle is not None and current > idle) or (current > 0 and minimum == 0):
        if _cooled_down(spec, state, now):
            return (idle if idle is not None else minimum), state.last_active_at, "Deactivated"
        return current, state.last_active_at, "CoolingDown"
    if idle is None and current < minimum:
        return minimum, state.last_active_at, "BelowMinReplicaCount"
    return current, state.last_active_at, "NoChange"


def poll(spec: ScaledObjectSpec, state: AutoscalerState, obs: Observation, now: float) -> Decision:
    """One polling interval: KEDA's scale loop, then an HPA sync on what it left."""
    usage, failures, fell_back = metrics_with_fallback(spec, state, obs)
    active = obs.active and not obs.error
    replicas, last_active, keda_reason = keda_request_scale(
        spec, state, active=active, error=obs.error, now=now
    )
    state = dataclasses.replace(
        state,
        replicas=replicas,
        last_active_at=last_active,
        failures=failures,
        target=state.target if obs.error else obs.target,  # an error keeps the last target
    )
    # The HPA works on the replicas KEDA left; KEDA's reason stands unless the HPA moved them.
    desired, hpa, hpa_reason, proposal = hpa_reconcile(
        spec, state.hpa, replicas, usage, to_milli(state.target), now
    )
    reason = keda_reason if desired == replicas else hpa_reason
    if fell_back:
        reason = f"Fallback/{reason}"
    return Decision(
        desired, dataclasses.replace(state, replicas=desired, hpa=hpa), reason, proposal
    )


def push(spec: ScaledObjectSpec, state: AutoscalerState, active: bool, now: float) -> Decision:
    """A StreamIsActive message: KEDA calls ``RequestScale(active, no error)`` at once."""
    replicas, last_active, reason = keda_request_scale(
        spec, state, active=active, error=False, now=now
    )
    state = dataclasses.replace(state, replicas=replicas, last_active_at=last_active)
    return Decision(replicas, state, f"Push/{reason}")
