"""The ScaledObject fields the local autoscaler obeys, parsed from a manifest dict.

Pure. The k8s generator (``oasis_keda.kubectl.manifests.scaled_object``) produces the same
ScaledObject a cluster gets; this module reads from it exactly the fields KEDA and the HPA
act on (``pollingInterval``, ``cooldownPeriod``, ``initialCooldownPeriod``,
``minReplicaCount``, ``maxReplicaCount``, ``idleReplicaCount``,
``advanced.horizontalPodAutoscalerConfig.behavior``, ``fallback``, the trigger's
``metricType``) and fills what is absent with the defaults KEDA and the Kubernetes API
server would apply. A bad value is refused with a :class:`ScaledObjectError` naming the
field path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from oasis_keda.runtime.errors import ScaledObjectError

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]
FallbackBehavior = Literal[
    "static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"
]

#: KEDA defaults (ScaledObject spec).
KEDA_DEFAULT_POLLING_INTERVAL_S = 30
KEDA_DEFAULT_COOLDOWN_PERIOD_S = 300
KEDA_DEFAULT_MAX_REPLICA_COUNT = 100
#: Kubernetes defaults (HPA controller flags and API defaulting of ``behavior``).
HPA_DEFAULT_TOLERANCE = 0.1
HPA_DEFAULT_SCALE_DOWN_WINDOW_S = 300
HPA_DEFAULT_SCALE_UP_WINDOW_S = 0


@dataclasses.dataclass(frozen=True)
class ScalingPolicy:
    """One HPA scaling policy: change by ``value`` pods or percent per ``period_s``."""

    type: PolicyType
    value: int
    period_s: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScalingRules:
    """``behavior.scaleUp`` or ``behavior.scaleDown`` with the API server's defaults filled."""

    stabilization_window_s: int
    select_policy: SelectPolicy = "Max"
    policies: tuple[ScalingPolicy, ...] = ()
    tolerance: float | None = None
    """Per-HPA tolerance (HPAConfigurableTolerance); None = the controller-wide default."""

    @property
    def longest_period_s(self) -> int:
        return max((p.period_s for p in self.policies), default=0)


#: ``scaleUp`` when unset: 4 pods or 100% per 15 s, whichever is more; no window.
DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_s=HPA_DEFAULT_SCALE_UP_WINDOW_S,
    select_policy="Max",
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
)
#: ``scaleDown`` when unset: 100% per 15 s after a 300 s window.
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_s=HPA_DEFAULT_SCALE_DOWN_WINDOW_S,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fallback:
    """``fallback``: after more than ``failure_threshold`` errors in a row, serve replicas."""

    failure_threshold: int
    replicas: int
    behavior: FallbackBehavior = "static"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScaledObjectSpec:
    """What KEDA and the HPA act on for one model."""

    polling_interval_s: float = KEDA_DEFAULT_POLLING_INTERVAL_S
    cooldown_period_s: float = KEDA_DEFAULT_COOLDOWN_PERIOD_S
    initial_cooldown_period_s: float = 0
    min_replica_count: int = 0
    max_replica_count: int = KEDA_DEFAULT_MAX_REPLICA_COUNT
    idle_replica_count: int | None = None
    behavior: Behavior | None = None
    """HPA ``behavior``; None = not set, so the HPA's legacy rules apply (scale-down window
    of 300 s, scale-up at most to max(2 x current, 4) per sync)."""
    fallback: Fallback | None = None
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"
    global_tolerance: float = HPA_DEFAULT_TOLERANCE
    """The controller-wide ``--horizontal-pod-autoscaler-tolerance`` (default 0.1)."""

    def __post_init__(self) -> None:
        if self.polling_interval_s <= 0:
            raise ScaledObjectError("spec.pollingInterval", "must be > 0")
        if self.cooldown_period_s < 0:
            raise ScaledObjectError("spec.cooldownPeriod", "must be >= 0")
        if self.min_replica_count < 0:
            raise ScaledObjectError("spec.minReplicaCount", "must be >= 0")
        if self.max_replica_count < 1:
            raise ScaledObjectError("spec.maxReplicaCount", "must be >= 1")
        if self.min_replica_count > self.max_replica_count:
            raise ScaledObjectError(
                "spec.minReplicaCount",
                f"{self.min_replica_count} exceeds maxReplicaCount {self.max_replica_count}",
            )

    @property
    def hpa_min_replicas(self) -> int:
        """The HPA's ``minReplicas`` as KEDA writes it: minReplicaCount, at least 1."""
        return max(self.min_replica_count, 1)

    @property
    def fallback_enabled(self) -> bool:
        """KEDA serves fallback only for AverageValue metrics with a valid fallback."""
        return (
            self.fallback is not None
            and self.metric_type == "AverageValue"
            and self.fallback.failure_threshold >= 0
            and self.fallback.replicas >= 0
        )


def _int(raw: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ScaledObjectError(path, f"must be an integer, got {raw!r}")
    if raw < minimum:
        raise ScaledObjectError(path, f"must be >= {minimum}, got {raw}")
    return int(raw)


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScaledObjectError(path, f"must be a mapping, got {type(raw).__name__}")
    return raw


def _tolerance(raw: Any, path: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)  # a Quantity: 0, "0.05", 0.1
    except (TypeError, ValueError):
        raise ScaledObjectError(path, f"must be a number, got {raw!r}") from None
    if value < 0:
        raise ScaledObjectError(path, f"must be >= 0, got {value}")
    return value


def parse_rules(raw: Any, path: str, default: ScalingRules) -> ScalingRules:
    """One ``scaleUp``/``scaleDown`` block, defaulted field by field like the API server."""
    block = _mapping(raw, path)
    if not block:
        return default
    window = block.get("stabilizationWindowSeconds")
    select = block.get("selectPolicy", "Max")
    if select not in ("Max", "Min", "Disabled"):
        raise ScaledObjectError(f"{path}.selectPolicy", f"unknown value {select!r}")
    policies = default.policies
    raw_policies = block.get("policies")
    if raw_policies is not None:
        if not isinstance(raw_policies, Sequence) or isinstance(raw_policies, str):
            raise ScaledObjectError(f"{path}.policies", "must be a list")
        parsed = []
        for i, item in enumerate(raw_policies):
            item_path = f"{path}.policies[{i}]"
            item = _mapping(item, item_path)
            kind = item.get("type")
            if kind not in ("Pods", "Percent"):
                raise ScaledObjectError(f"{item_path}.type", f"unknown value {kind!r}")
            parsed.append(
                ScalingPolicy(
                    cast(PolicyType, kind),
                    _int(item.get("value"), f"{item_path}.value", minimum=1),
                    _int(item.get("periodSeconds"), f"{item_path}.periodSeconds", minimum=1),
                )
            )
        policies = tuple(parsed)
    return ScalingRules(
        stabilization_window_s=(
            default.stabilization_window_s
            if window is None
            else _int(window, f"{path}.stabilizationWindowSeconds")
        ),
        select_policy=cast(SelectPolicy, select),
        policies=policies,
        tolerance=_tolerance(block.get("tolerance"), f"{path}.tolerance"),
    )


def _fallback(raw: Any) -> Fallback | None:
    if raw is None:
        return None
    block = _mapping(raw, "spec.fallback")
    behavior = block.get("behavior", "static")
    if behavior not in (
        "static",
        "currentReplicas",
        "currentReplicasIfHigher",
        "currentReplicasIfLower",
    ):
        raise ScaledObjectError("spec.fallback.behavior", f"unknown value {behavior!r}")
    return Fallback(
        failure_threshold=_int(block.get("failureThreshold"), "spec.fallback.failureThreshold"),
        replicas=_int(block.get("replicas"), "spec.fallback.replicas"),
        behavior=cast(FallbackBehavior, behavior),
    )


def parse_scaled_object(
    manifest: Mapping[str, Any], *, global_tolerance: float = HPA_DEFAULT_TOLERANCE
) -> ScaledObjectSpec:
    """The fields KEDA and the HPA act on, from a ScaledObject manifest (a plain dict)."""
    spec = _mapping(manifest.get("spec"), "spec")
    if not spec:
        raise ScaledObjectError("spec", "missing")

    def opt_int(key: str, default: int, minimum: int = 0) -> int:
        value = spec.get(key)
        return default if value is None else _int(value, f"spec.{key}", minimum=minimum)

    advanced = _mapping(spec.get("advanced"), "spec.advanced")
    hpa_config = _mapping(
        advanced.get("horizontalPodAutoscalerConfig"),
        "spec.advanced.horizontalPodAutoscalerConfig",
    )
    behavior_path = "spec.advanced.horizontalPodAutoscalerConfig.behavior"
    behavior: Behavior | None = None
    if hpa_config.get("behavior") is not None:
        raw_behavior = _mapping(hpa_config.get("behavior"), behavior_path)
        behavior = Behavior(
            scale_up=parse_rules(
                raw_behavior.get("scaleUp"), f"{behavior_path}.scaleUp", DEFAULT_SCALE_UP
            ),
            scale_down=parse_rules(
                raw_behavior.get("scaleDown"), f"{behavior_path}.scaleDown", DEFAULT_SCALE_DOWN
            ),
        )
    triggers = spec.get("triggers") or [{}]
    if not isinstance(triggers, Sequence) or isinstance(triggers, str):
        raise ScaledObjectError("spec.triggers", "must be a list")
    metric_type = _mapping(triggers[0], "spec.triggers[0]").get("metricType", "AverageValue")
    if metric_type not in ("AverageValue", "Value"):
        raise ScaledObjectError("spec.triggers[0].metricType", f"unsupported {metric_type!r}")
    idle = spec.get("idleReplicaCount")
    return ScaledObjectSpec(
        polling_interval_s=opt_int("pollingInterval", KEDA_DEFAULT_POLLING_INTERVAL_S, 1),
        cooldown_period_s=opt_int("cooldownPeriod", KEDA_DEFAULT_COOLDOWN_PERIOD_S),
        initial_cooldown_period_s=opt_int("initialCooldownPeriod", 0),
        min_replica_count=opt_int("minReplicaCount", 0),
        max_replica_count=opt_int("maxReplicaCount", KEDA_DEFAULT_MAX_REPLICA_COUNT, 1),
        idle_replica_count=None if idle is None else _int(idle, "spec.idleReplicaCount"),
        behavior=behavior,
        fallback=_fallback(spec.get("fallback")),
        metric_type=cast(Literal["AverageValue", "Value"], metric_type),
        global_tolerance=global_tolerance,
    )
