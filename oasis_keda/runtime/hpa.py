"""The Kubernetes HPA controller's 1 <-> N arithmetic, as pure functions.

The local autoscaler must scale a model the way a cluster would, so this module transcribes,
rule for rule, what the HPA controller (``reconcileAutoscaler``) does with one external
metric: ``AverageValue`` metrics give ``ceil(sum / target)`` unless
``sum / (target x current)`` lies inside the tolerance band ``[1 - down, 1 + up]`` (both
ends inclusive, default 0.1 each), then stabilization (scale-up takes the *minimum*
recommendation of its window, scale-down the *maximum*), then the rate policies
(Pods/Percent per period, selectPolicy Max/Min/Disabled, counted over the scale events of
each period), then min/max replicas. What KEDA does in front of the HPA (0 <-> 1, cooldown,
fallback) is :mod:`oasis_keda.runtime.keda`; the rules are listed in docs/LOCAL_RUNTIME.md.

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
