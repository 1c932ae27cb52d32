"""KEDA's 0 <-> 1 rules and the HPA's 1 <-> N arithmetic, as pure functions.

The local autoscaler must scale a model the way a cluster would, so this module transcribes
the two controllers that do it there (DESIGN.md section 4), rule for rule:

* KEDA's scale executor (``RequestScale``): 0 -> max(minReplicaCount, 1) as soon as a
  trigger is active (poll or push), N -> minReplicaCount (or idleReplicaCount) once the
  triggers have been inactive for longer than ``cooldownPeriod``, and *hold* on scaler
  errors instead of scaling in;
* KEDA's metrics fallback (``GetMetricsWithFallback``): errors in a row are counted, and
  once there are more than ``fallback.failureThreshold`` of them the HPA is served
  ``fallback.replicas x target`` (per ``fallback.behavior``); without a fallback the HPA
  gets an error and holds;
* the HPA controller (``reconcileAutoscaler``): ``AverageValue`` external metrics give
  ``ceil(sum / target)`` unless ``sum / (target x current)`` lies inside the tolerance band
  ``[1 - down, 1 + up]`` (both ends inclusive, default 0.1 each), then stabilization
  (scale-up takes the *minimum* recommendation of its window, scale-down the *maximum*),
  then the rate policies (Pods/Percent per period, selectPolicy Max/Min/Disabled, counted
  over the scale events of each period), then min/max replicas.

Nothing here reads a clock or does I/O: every function takes ``now`` (seconds on any
monotonic scale) and returns a new immutable state, so the unit tests replay minutes of
scaling in microseconds. Float arithmetic follows the Go code (float64 ratios, int64
milli-values, truncating int conversions) so the edge cases land where Kubernetes puts them.
"""

from __future__ import annotations

import dataclasses
import math

from oasis_keda.runtime.spec import (
    HPA_DEFAULT_SCALE_DOWN_WINDOW_S,
    Behavior,
    ScaledObjectSpec,
    ScalingRules,
)

_MAX_INT32 = 2**31 - 1
_MIN_INT32 = -(2**31)
#: Legacy HPA (no ``behavior``): scale up to at most max(2 x current, 4) per sync.
LEGACY_SCALE_UP_FACTOR = 2.0
LEGACY_SCALE_UP_MINIMUM = 4.0


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """An unstabilized HPA recommendation and when it was made."""

    at: float
    replicas: int


@dataclasses.dataclass(frozen=True)
class ScaleEvent:
    """A rescale the HPA made: ``change`` replicas added (or removed) at ``at``."""

    at: float
    change: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class HpaState:
    """The HPA controller's in-memory history for one HPA."""

    initialized: bool = False
    recommendations: tuple[Recommendation, ...] = ()
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()


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


# --- HPA ---------------------------------------------------------------------------------


def to_milli(value: float) -> int:
    """A Kubernetes Quantity's milli-value, as KEDA builds it (``int64(v * 1000)``)."""
    return int(value * 1000)


def within_tolerance(ratio: float, *, up: float, down: float) -> bool:
    """The HPA's band: no change while ``1 - down <= ratio <= 1 + up`` (inclusive)."""
    return (1.0 - down) <= ratio <= (1.0 + up)


def tolerances(spec: ScaledObjectSpec) -> tuple[float, float]:
    """``(up, down)``: per-HPA ``behavior`` tolerances, else the controller-wide one."""
    up = down = spec.global_tolerance
    if spec.behavior is not None:
        if spec.behavior.scale_up.tolerance is not None:
            up = spec.behavior.scale_up.tolerance
        if spec.behavior.scale_down.tolerance is not None:
            down = spec.behavior.scale_down.tolerance
    return up, down


def average_value_replicas(
    current: int, usage_milli: int, target_milli: int, *, up: float, down: float
) -> int:
    """``GetExternalPerPodMetricReplicas``: ``ceil(usage / target)`` outside the band."""
    if target_milli <= 0:
        raise ValueError(f"metric target must be > 0, got {target_milli / 1000}")
    ratio = usage_milli / (target_milli * current) if current else math.inf
    if within_tolerance(ratio, up=up, down=down):
        return current
    return min(math.ceil(usage_milli / target_milli), _MAX_INT32)


def value_replicas(
    current: int, usage_milli: int, target_milli: int, *, up: float, down: float
) -> int:
    """``GetExternalMetricReplicas`` (metricType Value): ``ceil(ratio x ready pods)``."""
    if target_milli <= 0:
        raise ValueError(f"metric target must be > 0, got {target_milli / 1000}")
    ratio = usage_milli / target_milli
    if within_tolerance(ratio, up=up, down=down):
        return current
    return min(math.ceil(ratio * current), _MAX_INT32)


def change_in_period(period_s: float, events: tuple[ScaleEvent, ...], now: float) -> int:
    """``getReplicasChangePerPeriod``: replicas changed by events newer than the period."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.at > cutoff)


def _replicas_at_period_start(
    current: int,
    period_s: float,
    up_events: tuple[ScaleEvent, ...],
    down_events: tuple[ScaleEvent, ...],
    now: float,
) -> int:
    """Replicas before the scale events of the last ``period_s``: what a policy limits from."""
    return (
        current
        - change_in_period(period_s, up_events, now)
        + change_in_period(period_s, down_events, now)
    )


def scale_up_limit(
    current: int,
    up_events: tuple[ScaleEvent, ...],
    down_events: tuple[ScaleEvent, ...],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow."""
    if rules.select_policy == "Disabled":
        return current
    pick_min = rules.select_policy == "Min"
    result = _MAX_INT32 if pick_min else _MIN_INT32
    for policy in rules.policies:
        start = _replicas_at_period_start(current, policy.period_s, up_events, down_events, now)
        if policy.type == "Pods":
            proposed = start + policy.value
        else:  # the proposal is rounded up, or a small target would never grow
            proposed = math.ceil(start * (1 + policy.value / 100))
        result = min(result, proposed) if pick_min else max(result, proposed)
    return result


def scale_down_limit(
    current: int,
    up_events: tuple[ScaleEvent, ...],
    down_events: tuple[ScaleEvent, ...],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow."""
    if rules.select_policy == "Disabled":
        return current
    pick_min_change = rules.select_policy == "Min"
    result = _MIN_INT32 if pick_min_change else _MAX_INT32
    for policy in rules.policies:
        start = _replicas_at_period_start(current, policy.period_s, up_events, down_events, now)
        if policy.type == "Pods":
            proposed = start - policy.value
        else:  # Go's int32() truncates toward zero
            proposed = int(start * (1 - policy.value / 100))
        result = max(result, proposed) if pick_min_change else min(result, proposed)
    return result


def stabilize(
    behavior: Behavior,
    recommendations: tuple[Recommendation, ...],
    current: int,
    desired: int,
    now: float,
) -> tuple[int, tuple[Recommendation, ...]]:
    """``stabilizeRecommendationWithBehaviors``; returns the value and the new history.

    Scale-up takes the minimum recommendation of its window (so a spike must last the whole
    window), scale-down the maximum of its window (so a dip must). Samples older than both
    windows can never count again and are dropped.
    """
    up_cutoff = now - behavior.scale_up.stabilization_window_s
    down_cutoff = now - behavior.scale_down.stabilization_window_s
    up_rec = down_rec = desired
    for rec in recommendations:
        if rec.at > up_cutoff:
            up_rec = min(rec.replicas, up_rec)
        if rec.at > down_cutoff:
            down_rec = max(rec.replicas, down_rec)
    # bring the current count within [up_rec, down_rec] (up_rec <= desired <= down_rec)
    result = min(max(current, up_rec), down_rec)
    kept = tuple(r for r in recommendations if not (r.at < up_cutoff and r.at < down_cutoff))
    return result, (*kept, Recommendation(now, desired))


def _normalize_with_behavior(
    spec: ScaledObjectSpec,
    behavior: Behavior,
    hpa: HpaState,
    current: int,
    desired: int,
    now: float,
) -> tuple[int, HpaState, str]:
    """``normalizeDesiredReplicasWithBehaviors``: stabilize, then rate-limit, then clamp."""
    stabilized, recs = stabilize(behavior, hpa.recommendations, current, desired, now)
    hpa = dataclasses.replace(hpa, recommendations=recs)
    reason = "DesiredWithinRange" if stabilized == desired else "Stabilized"
    if stabilized > current:
        limit = scale_up_limit(
            current, hpa.scale_up_events, hpa.scale_down_events, behavior.scale_up, now
        )
        limit = max(limit, current)
        allowed, why = (
            (limit, "ScaleUpLimit")
            if spec.max_replica_count > limit
            else (spec.max_replica_count, "TooManyReplicas")
        )
        if stabilized > allowed:
            return allowed, hpa, why
    elif stabilized < current:
        limit = scale_down_limit(
            current, hpa.scale_up_events, hpa.scale_down_events, behavior.scale_down, now
        )
        limit = min(limit, current)
        allowed, why = (
            (limit, "ScaleDownLimit")
            if spec.hpa_min_replicas < limit
            else (spec.hpa_min_replicas, "TooFewReplicas")
        )
        if stabilized < allowed:
            return allowed, hpa, why
    return stabilized, hpa, reason


def _normalize_legacy(
    spec: ScaledObjectSpec, hpa: HpaState, current: int, desired: int, now: float
) -> tuple[int, HpaState, str]:
    """``normalizeDesiredReplicas`` (no ``behavior``): 300 s scale-down window, 2x up."""
    cutoff = now - HPA_DEFAULT_SCALE_DOWN_WINDOW_S
    kept = tuple(r for r in hpa.recommendations if not r.at < cutoff)
    stabilized = max([desired, *(r.replicas for r in kept)])
    hpa = dataclasses.replace(hpa, recommendations=(*kept, Recommendation(now, desired)))
    limit = int(max(LEGACY_SCALE_UP_FACTOR * current, LEGACY_SCALE_UP_MINIMUM))
    allowed_max, why = (
        (limit, "ScaleUpLimit")
        if spec.max_replica_count > limit
        else (spec.max_replica_count, "TooManyReplicas")
    )
    if stabilized < spec.hpa_min_replicas:
        return spec.hpa_min_replicas, hpa, "TooFewReplicas"
    if stabilized > allowed_max:
        return allowed_max, hpa, why
    return stabilized, hpa, "DesiredWithinRange" if stabilized == desired else "Stabilized"


def _store_scale_event(
    behavior: Behavior | None, hpa: HpaState, previous: int, new: int, now: float
) -> HpaState:
    """``storeScaleEvent``: remember a rescale; events older than every period are dropped."""
    if behavior is None:
        return hpa
    if new > previous:
        cutoff = now - behavior.scale_up.longest_period_s
        kept = tuple(e for e in hpa.scale_up_events if not e.at < cutoff)
        return dataclasses.replace(hpa, scale_up_events=(*kept, ScaleEvent(now, new - previous)))
    cutoff = now - behavior.scale_down.longest_period_s
    kept = tuple(e for e in hpa.scale_down_events if not e.at < cutoff)
    return dataclasses.replace(hpa, scale_down_events=(*kept, ScaleEvent(now, previous - new)))


def hpa_reconcile(
    spec: ScaledObjectSpec,
    hpa: HpaState,
    current: int,
    usage_milli: int | None,
    target_milli: int,
    now: float,
) -> tuple[int, HpaState, str, int | None]:
    """One HPA sync (``reconcileAutoscaler``) for one external metric.

    ``usage_milli`` is None when the metric could not be read: the HPA then holds.
    Returns ``(replicas, new state, reason, metric proposal)``.
    """
    if not hpa.initialized:  # recordInitialRecommendation
        hpa = dataclasses.replace(
            hpa, initialized=True, recommendations=(Recommendation(now, current),)
        )
    minimum = spec.hpa_min_replicas
    proposal: int | None = None
    if current == 0:
        return 0, hpa, "ScalingDisabled", None
    if current > spec.max_replica_count:
        desired, reason = spec.max_replica_count, "AboveMaxReplicas"
    elif current < minimum:
        desired, reason = minimum, "BelowMinReplicas"
    elif usage_milli is None:
        return current, hpa, "FailedGetExternalMetric", None
    else:
        up, down = tolerances(spec)
        compute = average_value_replicas if spec.metric_type == "AverageValue" else value_replicas
        proposal = compute(current, usage_milli, target_milli, up=up, down=down)
        if spec.behavior is None:
            desired, hpa, reason = _normalize_legacy(spec, hpa, current, proposal, now)
        else:
            desired, hpa, reason = _normalize_with_behavior(
                spec, spec.behavior, hpa, current, proposal, now
            )
    if desired != current:
        hpa = _store_scale_event(spec.behavior, hpa, current, desired, now)
    return desired, hpa, reason, proposal


# --- KEDA --------------------------------------------------------------------------------


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
    if active:
        if (idle is not None and current < minimum) or current == 0:
            return max(minimum, 1), now, "Activated"
        if error:
            return current, state.last_active_at, "PartialTriggerError"
        return current, now, "Active"
    if error and spec.fallback is not None and spec.fallback.replicas != 0:
        return current, state.last_active_at, "TriggerErrorFallback"
    if error and spec.fallback is None:
        return current, state.last_active_at, "TriggerError"
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
        target=state.target if obs.error else obs.target,
    )
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
