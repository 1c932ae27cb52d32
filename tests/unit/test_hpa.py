"""KEDA's 0 <-> 1 rules and the HPA's 1 <-> N arithmetic (oasis_keda.runtime.keda, .hpa, .spec).

Covers: the AverageValue formula and the inclusive tolerance band (10 -> 11 and 20 -> 21
held, 10 -> 12 applied; per-HPA tolerances), scale-up and scale-down stabilization windows,
Pods/Percent policies with selectPolicy Max/Min/Disabled and their periods, the legacy
rules without ``behavior``, min/max replicas, KEDA activation (poll and push), cooldown to
zero (and to minReplicaCount / idleReplicaCount), holding on scaler errors, fallback after
more than ``failureThreshold`` errors in a row, and parsing the generator's ScaledObject.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from oasis_keda.runtime import hpa, keda
from oasis_keda.runtime.errors import ScaledObjectError
from oasis_keda.runtime.hpa import HpaState, ScaleEvent
from oasis_keda.runtime.keda import AutoscalerState, Observation
from oasis_keda.runtime.spec import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    Fallback,
    ScaledObjectSpec,
    ScalingPolicy,
    ScalingRules,
    parse_scaled_object,
)

DEFAULTS = ScaledObjectSpec(behavior=Behavior(), max_replica_count=100)


def spec(**changes: Any) -> ScaledObjectSpec:
    return dataclasses.replace(DEFAULTS, **changes)


# --- formula and tolerance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "metric", "expected"),
    [
        (10, 11, 10),  # ratio 1.1: on the band's upper edge, held
        (20, 21, 20),  # ratio 1.05: held
        (10, 12, 12),  # ratio 1.2: applied
        (10, 9, 10),  # ratio 0.9: on the lower edge, held
        (10, 8, 8),  # ratio 0.8: applied
        (1, 3, 3),
        (4, 0, 0),  # the formula may say 0; min replicas clamps later
        (3, 7, 7),
    ],
)
def test_average_value_formula_with_default_tolerance(
    current: int, metric: int, expected: int
) -> None:
    got = hpa.average_value_replicas(
        current, hpa.to_milli(metric), hpa.to_milli(1), up=0.1, down=0.1
    )
    assert got == expected


def test_average_value_rounds_up_fractional_targets() -> None:
    # 7 units of work at 2 per worker: ceil(3.5) = 4
    assert hpa.average_value_replicas(1, 7000, 2000, up=0.1, down=0.1) == 4


@pytest.mark.parametrize(
    ("current", "metric", "expected"),
    [
        (10, 11, 11),  # tolerance 0 (what the k8s generator asks for): every change counts
        (20, 21, 21),
        (20, 19, 19),
    ],
)
def test_zero_tolerance_applies_every_change(current: int, metric: int, expected: int) -> None:
    rules_up = dataclasses.replace(DEFAULT_SCALE_UP, tolerance=0.0)
    rules_down = dataclasses.replace(DEFAULT_SCALE_DOWN, tolerance=0.0, stabilization_window_s=0)
    s = spec(behavior=Behavior(scale_up=rules_up, scale_down=rules_down))
    replicas, *_ = hpa.hpa_reconcile(s, HpaState(), current, metric * 1000, 1000, now=0.0)
    assert replicas == expected


def test_tolerance_cases_through_a_full_hpa_sync() -> None:
    s = spec(behavior=Behavior(scale_down=dataclasses.replace(DEFAULT_SCALE_DOWN)))
    for current, metric, expected in [(10, 11, 10), (20, 21, 20), (10, 12, 12)]:
        replicas, _, _, _ = hpa.hpa_reconcile(s, HpaState(), current, metric * 1000, 1000, 0.0)
        assert replicas == expected, (current, metric)


def test_separate_up_and_down_tolerances() -> None:
    s = spec(
        behavior=Behavior(
            scale_up=dataclasses.replace(DEFAULT_SCALE_UP, tolerance=0.5),
            scale_down=dataclasses.replace(
                DEFAULT_SCALE_DOWN, tolerance=0.0, stabilization_window_s=0
            ),
        )
    )
    assert hpa.tolerances(s) == (0.5, 0.0)
    assert hpa.hpa_reconcile(s, HpaState(), 10, 15_000, 1000, 0.0)[0] == 10  # 1.5 held
    assert hpa.hpa_reconcile(s, HpaState(), 10, 9_000, 1000, 0.0)[0] == 9  # 0.9 applied


# --- stabilization -------------------------------------------------------------------------


def test_scale_down_waits_for_the_window_and_takes_its_maximum() -> None:
    s = spec(behavior=Behavior(scale_down=dataclasses.replace(DEFAULT_SCALE_DOWN, tolerance=0.0)))
    state = HpaState()
    replicas = 8
    history = []
    # metric says 8 at t=0, 5 at t=100, 2 from t=200 on; window 300 s
    for t in range(0, 700, 50):
        metric = 8 if t < 100 else (5 if t < 200 else 2)
        replicas, state, _, _ = hpa.hpa_reconcile(s, state, replicas, metric * 1000, 1000, t)
        history.append((t, replicas))
    at = dict(history)
    assert at[250] == 8  # the 8 recommended at t=0..50 is still in the window
    assert at[300] == 8  # t=50's 8 is newer than the cutoff (t=0)
    assert at[350] == 5  # the cutoff is exclusive: t=50's 8 no longer counts
    assert at[400] == 5  # max of the window (5 from t=150)
    assert at[450] == 2


def test_scale_up_window_takes_the_minimum() -> None:
    rules_up = dataclasses.replace(DEFAULT_SCALE_UP, stabilization_window_s=60, tolerance=0.0)
    s = spec(behavior=Behavior(scale_up=rules_up))
    state = HpaState()
    replicas, state, *_ = hpa.hpa_reconcile(s, state, 2, 2000, 1000, 0)
    assert replicas == 2
    # a spike to 6 at t=10 is held while the window still holds the 2 of t=0
    replicas, state, reason, proposal = hpa.hpa_reconcile(s, state, 2, 6000, 1000, 10)
    assert (replicas, proposal) == (2, 6)
    assert reason == "Stabilized"
    replicas, state, *_ = hpa.hpa_reconcile(s, state, 2, 6000, 1000, 61)
    assert replicas == 6


# --- rate policies ---------------------------------------------------------------------------


def test_default_scale_up_is_4_pods_or_100_percent_per_15s() -> None:
    s = spec(max_replica_count=50)
    state = HpaState()
    replicas = 1
    seen = []
    for t in (0, 1, 2, 16, 17, 32):
        replicas, state, _, _ = hpa.hpa_reconcile(s, state, replicas, 40_000, 1000, t)
        seen.append(replicas)
    # 1 -> 5 (Pods 4 beats 100%), held for the period, 5 -> 10 (100% beats 4), ... -> 20
    assert seen == [5, 5, 5, 10, 10, 20]


@pytest.mark.parametrize(
    ("select", "expected"),
    [("Max", 20), ("Min", 14), ("Disabled", 10)],
)
def test_select_policy_on_scale_up(select: str, expected: int) -> None:
    rules = ScalingRules(
        stabilization_window_s=0,
        select_policy=select,  # type: ignore[arg-type]
        policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
    )
    s = spec(behavior=Behavior(scale_up=rules))
    assert hpa.hpa_reconcile(s, HpaState(), 10, 40_000, 1000, 0.0)[0] == expected


def test_scale_down_percent_truncates_and_counts_the_period() -> None:
    rules = ScalingRules(stabilization_window_s=0, policies=(ScalingPolicy("Percent", 50, 60),))
    s = spec(behavior=Behavior(scale_down=rules))
    replicas, state, *_ = hpa.hpa_reconcile(s, HpaState(), 9, 1000, 1000, 0)
    assert replicas == 4  # int(9 * 0.5) = 4
    # within the same 60 s period the start is still 9: no further step yet
    replicas, state, *_ = hpa.hpa_reconcile(s, state, replicas, 1000, 1000, 30)
    assert replicas == 4
    replicas, state, *_ = hpa.hpa_reconcile(s, state, replicas, 1000, 1000, 61)
    assert replicas == 2


def test_scale_down_pods_policy_with_min_select() -> None:
    rules = ScalingRules(
        stabilization_window_s=0,
        select_policy="Min",
        policies=(ScalingPolicy("Pods", 1, 10), ScalingPolicy("Percent", 50, 10)),
    )
    s = spec(behavior=Behavior(scale_down=rules))
    assert hpa.hpa_reconcile(s, HpaState(), 10, 1000, 1000, 0.0)[0] == 9


def test_scale_events_outside_every_period_are_dropped() -> None:
    events = (ScaleEvent(0.0, 3), ScaleEvent(10.0, 2))
    assert hpa.change_in_period(15, events, 20.0) == 2
    assert hpa.change_in_period(30, events, 20.0) == 5


def test_legacy_rules_without_behavior() -> None:
    s = spec(behavior=None, max_replica_count=100)
    assert hpa.hpa_reconcile(s, HpaState(), 1, 40_000, 1000, 0.0)[0] == 4  # max(2x1, 4)
    assert hpa.hpa_reconcile(s, HpaState(), 10, 40_000, 1000, 0.0)[0] == 20
    replicas, state, *_ = hpa.hpa_reconcile(s, HpaState(), 10, 20_000, 1000, 0.0)
    assert replicas == 20
    # scale-down waits for the controller's 300 s window
    replicas, state, *_ = hpa.hpa_reconcile(s, state, 20, 2000, 1000, 200.0)
    assert replicas == 20
    assert hpa.hpa_reconcile(s, state, 20, 2000, 1000, 301.0)[0] == 2


# --- min / max -------------------------------------------------------------------------------


def test_min_and_max_replicas() -> None:
    s = spec(min_replica_count=0, max_replica_count=6)
    assert hpa.hpa_reconcile(s, HpaState(), 4, 50_000, 1000, 0.0)[0] == 6
    assert hpa.hpa_reconcile(s, HpaState(), 9, 9000, 1000, 0.0)[0] == 6  # above max
    # the HPA never goes below 1 (KEDA owns 1 -> 0)
    down_now = Behavior(
        scale_down=dataclasses.replace(DEFAULT_SCALE_DOWN, stabilization_window_s=0)
    )
    s0 = spec(behavior=down_now)
    assert hpa.hpa_reconcile(s0, HpaState(), 3, 0, 1000, 0.0)[0] == 1
    s2 = spec(behavior=down_now, min_replica_count=2)
    assert hpa.hpa_reconcile(s2, HpaState(), 3, 0, 1000, 0.0)[0] == 2


def test_hpa_is_disabled_at_zero_and_holds_on_metric_errors() -> None:
    assert hpa.hpa_reconcile(DEFAULTS, HpaState(), 0, 9000, 1000, 0.0)[:1] == (0,)
    replicas, _, reason, _ = hpa.hpa_reconcile(DEFAULTS, HpaState(), 3, None, 1000, 0.0)
    assert (replicas, reason) == (3, "FailedGetExternalMetric")


# --- KEDA 0 <-> 1 ----------------------------------------------------------------------------


def fast(**changes: Any) -> ScaledObjectSpec:
    """A local-style spec: no windows, 10 s cooldown."""
    base = spec(
        cooldown_period_s=10,
        behavior=Behavior(
            scale_up=dataclasses.replace(DEFAULT_SCALE_UP, tolerance=0.0),
            scale_down=dataclasses.replace(
                DEFAULT_SCALE_DOWN, stabilization_window_s=0, tolerance=0.0
            ),
        ),
    )
    return dataclasses.replace(base, **changes)


def test_activation_then_hpa_then_cooldown_to_zero() -> None:
    s = fast()
    state = AutoscalerState()
    busy = Observation(active=True, metric_total=3)
    idle = Observation(active=False, metric_total=0)
    d = keda.poll(s, state, idle, 0.0)
    assert d.replicas == 0
    d = keda.poll(s, d.state, busy, 1.0)  # KEDA 0 -> 1, the HPA 1 -> 3 in the same step
    assert d.replicas == 3
    assert d.state.last_active_at == 1.0
    d = keda.poll(s, d.state, busy, 2.0)
    assert d.replicas == 3
    # inactive: the HPA takes it down to 1 (its floor), KEDA waits out the cooldown
    d = keda.poll(s, d.state, idle, 3.0)
    assert d.replicas == 1
    d = keda.poll(s, d.state, idle, 12.0)
    assert (d.replicas, d.reason) == (1, "CoolingDown")
    d = keda.poll(s, d.state, idle, 12.5)  # 2.0 + 10 < 12.5
    assert (d.replicas, d.reason) == (0, "Deactivated")


def test_cooldown_to_min_and_idle_replica_counts() -> None:
    s = fast(min_replica_count=2)
    state = AutoscalerState(replicas=0)
    d = keda.poll(s, state, Observation(active=False), 0.0)
    assert d.replicas == 2  # below minReplicaCount: corrected
    s_idle = fast(min_replica_count=2, idle_replica_count=0)
    state = AutoscalerState(replicas=2, last_active_at=0.0)
    d = keda.poll(s_idle, state, Observation(active=False), 11.0)
    assert d.replicas == 0
    d = keda.poll(s_idle, d.state, Observation(active=True, metric_total=1), 12.0)
    assert d.replicas == 2  # activation goes to minReplicaCount


def test_initial_cooldown_when_never_active() -> None:
    s = fast(initial_cooldown_period_s=30)
    state = AutoscalerState(replicas=1, created_at=0.0)
    assert keda.poll(s, state, Observation(), 20.0).replicas == 1
    assert keda.poll(s, state, Observation(), 31.0).replicas == 0


def test_push_activates_at_once_and_pushed_false_respects_cooldown() -> None:
    s = fast()
    d = keda.push(s, AutoscalerState(), True, 5.0)
    assert (d.replicas, d.state.last_active_at) == (1, 5.0)
    d = keda.push(s, d.state, False, 6.0)
    assert d.replicas == 1  # still cooling down
    d = keda.push(s, d.state, False, 15.5)
    assert d.replicas == 0


# --- errors and fallback ---------------------------------------------------------------------


def test_errors_without_fallback_hold_replicas() -> None:
    s = fast()
    state = AutoscalerState(replicas=4, last_active_at=0.0)
    for t in (100.0, 200.0, 300.0):
        d = keda.poll(s, state, Observation(error=True), t)
        assert d.replicas == 4
        state = d.state
    assert d.reason == "TriggerError"


def test_fallback_after_more_than_failure_threshold_errors() -> None:
    s = fast(fallback=Fallback(failure_threshold=3, replicas=6))
    state = AutoscalerState(replicas=2, last_active_at=0.0)
    replicas = []
    for t in range(1, 6):
        d = keda.poll(s, state, Observation(error=True), float(t))
        state = d.state
        replicas.append(d.replicas)
    # errors 1..3 hold; the 4th (> failureThreshold) serves fallback.replicas
    assert replicas == [2, 2, 2, 6, 6]
    assert state.failures == 5
    d = keda.poll(s, state, Observation(active=True, metric_total=1), 6.0)
    assert d.state.failures == 0  # one success resets the count
    assert d.replicas == 1


@pytest.mark.parametrize(
    ("behavior", "current", "expected"),
    [
        ("static", 5, 3),
        ("currentReplicas", 5, 5),
        ("currentReplicasIfHigher", 5, 5),
        ("currentReplicasIfHigher", 2, 3),
        ("currentReplicasIfLower", 5, 3),
        ("currentReplicasIfLower", 2, 2),
    ],
)
def test_fallback_behaviors(behavior: str, current: int, expected: int) -> None:
    s = fast(fallback=Fallback(failure_threshold=0, replicas=3, behavior=behavior))  # type: ignore[arg-type]
    state = AutoscalerState(replicas=current, last_active_at=0.0)
    assert keda.poll(s, state, Observation(error=True), 1.0).replicas == expected


def test_fallback_zero_replicas_lets_keda_scale_to_zero_after_cooldown() -> None:
    s = fast(fallback=Fallback(failure_threshold=5, replicas=0))
    state = AutoscalerState(replicas=1, last_active_at=0.0)
    assert keda.poll(s, state, Observation(error=True), 11.0).replicas == 0


# --- ScaledObject parsing --------------------------------------------------------------------


def test_parse_a_scaled_object_fills_defaults() -> None:
    parsed = parse_scaled_object({"spec": {"triggers": [{"type": "external-push"}]}})
    assert parsed.polling_interval_s == 30
    assert parsed.cooldown_period_s == 300
    assert (parsed.min_replica_count, parsed.max_replica_count) == (0, 100)
    assert parsed.behavior is None
    assert parsed.fallback is None


def test_parse_behavior_and_fallback() -> None:
    manifest = {
        "spec": {
            "pollingInterval": 1,
            "cooldownPeriod": 5,
            "minReplicaCount": 0,
            "maxReplicaCount": 4,
            "fallback": {
                "failureThreshold": 3,
                "replicas": 1,
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "tolerance": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                        },
                        "scaleDown": {"stabilizationWindowSeconds": 10},
                    }
                }
            },
            "triggers": [{"type": "external-push", "metricType": "AverageValue"}],
        }
    }
    parsed = parse_scaled_object(manifest)
    assert parsed.behavior is not None
    assert parsed.behavior.scale_up.policies == (ScalingPolicy("Percent", 100, 15),)
    assert parsed.behavior.scale_up.tolerance == 0.0
    assert parsed.behavior.scale_up.stabilization_window_s == 0
    assert parsed.behavior.scale_down.stabilization_window_s == 10
    assert parsed.behavior.scale_down.policies == DEFAULT_SCALE_DOWN.policies
    assert parsed.fallback == Fallback(
        failure_threshold=3, replicas=1, behavior="currentReplicasIfHigher"
    )


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"pollingInterval": 0}, "spec.pollingInterval"),
        ({"maxReplicaCount": "4"}, "spec.maxReplicaCount"),
        ({"minReplicaCount": 5, "maxReplicaCount": 4}, "spec.minReplicaCount"),
        ({"fallback": {"failureThreshold": 3}}, "spec.fallback.replicas"),
        (
            {
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {"scaleUp": {"selectPolicy": "Sometimes"}}
                    }
                }
            },
            "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.selectPolicy",
        ),
    ],
)
def test_parse_refuses_bad_fields_by_name(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ScaledObjectError) as err:
        parse_scaled_object({"spec": patch})
    assert err.value.field == field
