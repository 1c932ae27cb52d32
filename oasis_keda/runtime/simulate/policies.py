"""The scaling policies the simulator compares, each over the same model view.

* ``oasis-keda`` (ours): the scaler's answer is :func:`scaler.strategies.desired_workers`
  (under a global limit, :func:`scaler.budget.grant` with the grants and raises it stored),
  served as the metric with target 1 and turned into replicas by KEDA's and the HPA's rules
  (:func:`oasis_keda.runtime.keda.poll` and :func:`~oasis_keda.runtime.keda.push`, on the
  ScaledObject the k8s generator writes). A scale-down stops idle workers first (pod
  deletion cost), so the busy floor means a busy worker is never picked.
* ``list-length``: KEDA's plain Redis list-length rule on the model's queue: the metric is
  the waiting messages only, target ``listLength``, active while the list is not empty, the
  same KEDA + HPA arithmetic, no push. Kubernetes picks the pods to delete without knowing
  which are busy (not-ready first, then the newest).
* ``oasis-controller``: the Oasis worker controller's policy: the strategy's formula alone
  (:func:`scaler.strategies.formula_workers`, no busy floor) set as the replicas on every
  poll, no stabilization; a global limit is handed out first come first served (the model
  whose oldest analysis arrived first takes what it asks); pods deleted as above.

A busy pod that is deleted gets its grace period to finish its sub-task and is killed
after it (its sub-task goes back to the queue). docs/SIMULATOR.md states these models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, cast

from oasis_keda.core.config import ScalingConfig, ScalingStrategy, parse_config
from oasis_keda.core.registry import ModelRecord
from oasis_keda.kubectl.manifests import scaled_object
from oasis_keda.runtime import keda
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.spec import ScaledObjectSpec, parse_scaled_object
from scaler.budget import Demand, grant, pending_raise
from scaler.strategies import ModelState, desired_workers, formula_workers

PolicyName = Literal["oasis-keda", "list-length", "oasis-controller"]
POLICIES: tuple[PolicyName, ...] = ("oasis-keda", "list-length", "oasis-controller")
#: The policies each configuration of ours is compared with.
BASELINES: tuple[PolicyName, ...] = ("list-length", "oasis-controller")
#: The scaler's default start allowance of a raised grant (seconds).
START_ALLOWANCE_S = 60.0
#: Kubernetes' default ``terminationGracePeriodSeconds``.
KUBERNETES_GRACE_S = 30.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Configuration:
    """One scaling configuration to simulate (a ``--strategy`` JSON object)."""

    name: str
    policy: PolicyName = "oasis-keda"
    scaling: ScalingConfig | None = None
    """The scaling configuration of every model; None: each model's recorded one."""
    global_limit: int | None = None
    list_length: int | None = None
    """``list-length`` only: messages per worker (default: ``chunks_per_worker``)."""
    grace_s: float | None = None
    """Grace of a deleted busy pod (default: 600 s for ours, Kubernetes' 30 s otherwise)."""

    def scaling_for(self, recorded: ScalingConfig) -> ScalingConfig:
        return self.scaling if self.scaling is not None else recorded

    @property
    def effective_grace_s(self) -> float:
        if self.grace_s is not None:
            return self.grace_s
        return 600.0 if self.policy == "oasis-keda" else KUBERNETES_GRACE_S

    def baseline(self, policy: PolicyName) -> Configuration:
        """The same configuration under another policy (grace back to its default)."""
        return dataclasses.replace(
            self, name=f"{self.name} / {policy}", policy=policy, grace_s=None
        )


_OWN_KEYS = ("name", "policy", "global_limit", "list_length", "grace_s")


def parse_configuration(raw: Mapping[str, Any], default_name: str) -> Configuration:
    """A ``--strategy`` object: scaling fields plus ``name``, ``policy``, ``global_limit``,
    ``list_length``, ``grace_s``. Without scaling fields the recorded ones apply."""
    policy = raw.get("policy", "oasis-keda")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    fields = {k: v for k, v in raw.items() if k not in _OWN_KEYS}
    scaling = parse_config(ScalingConfig, fields) if fields else None
    limit, length, grace = raw.get("global_limit"), raw.get("list_length"), raw.get("grace_s")
    return Configuration(
        name=str(raw.get("name") or default_name),
        policy=cast(PolicyName, policy),
        scaling=scaling,
        global_limit=None if limit is None else int(limit),
        list_length=None if length is None else int(length),
        grace_s=None if grace is None else float(grace),
    )


@dataclasses.dataclass(kw_only=True)
class ModelView:
    """What a policy sees of one model and what it carries between decisions."""

    model_id: str
    config: ScalingConfig
    state: ModelState
    auto: keda.AutoscalerState
    oldest_arrival: float | None = None
    granted: int = 0
    raise_raw: str | None = None


def model_spec(
    model_id: str, settings: AutoscalerSettings, config: ScalingConfig
) -> ScaledObjectSpec:
    """The ScaledObject the k8s generator writes for this model, as KEDA reads it."""
    record = ModelRecord(
        model_id=model_id,
        pk=1,
        queue=model_id,
        supplier_id="sim",
        model_name=model_id,
        version_id="1",
        scaling=config,
    )
    return parse_scaled_object(scaled_object(record, settings.manifest_settings("sim:0")))


def _ms(t: float) -> int:
    return round(t * 1000)


def scaler_answers(
    views: Mapping[str, ModelView], limit: int | None, now: float
) -> dict[str, tuple[int, int]]:
    """``{model: (wanted, desired)}`` as the scaler answers; stores grants under a limit."""
    wanted = {m: desired_workers(v.config, v.state) for m, v in views.items()}
    if limit is None:
        return {m: (w, w) for m, w in wanted.items()}
    demands = [
        Demand(
            model_id=m,
            wanted=wanted[m],
            waiting_since_ms=None if v.oldest_arrival is None else _ms(v.oldest_arrival),
            live=v.state.live,
            granted=v.granted,
            raised=pending_raise(v.raise_raw, live=v.state.live, now_ms=_ms(now)),
        )
        for m, v in views.items()
    ]
    grants = grant(demands, limit)
    until = _ms(now + START_ALLOWANCE_S)
    for m, v in views.items():
        v.granted = grants.granted[m]
        if m in grants.raised:
            v.raise_raw = f"{grants.raised[m]}:{until}"
    return {m: (wanted[m], grants.granted[m]) for m in views}


def controller_answers(views: Mapping[str, ModelView], limit: int | None) -> dict[str, int]:
    """The Oasis controller's replicas: the formula, a limit handed out first come first
    served (oldest analysis first)."""
    asked = {m: formula_workers(v.config, v.state) for m, v in views.items()}
    if limit is None:
        return asked
    order = sorted(
        views.values(),
        key=lambda v: (v.oldest_arrival is None, v.oldest_arrival or 0.0, v.model_id),
    )
    left = limit
    given = {}
    for v in order:
        given[v.model_id] = min(asked[v.model_id], left)
        left -= given[v.model_id]
    return given


def list_length_of(configuration: Configuration, config: ScalingConfig) -> int:
    if configuration.list_length is not None:
        return max(configuration.list_length, 1)
    if config.scaling_strategy is ScalingStrategy.DYNAMIC_TASKS:
        return config.chunks_per_worker
    return 1


def list_length_observation(length: int, state: ModelState) -> keda.Observation:
    """KEDA's Redis list scaler: LLEN of the queue against ``listLength``."""
    return keda.Observation(
        active=state.waiting > 0, metric_total=float(state.waiting), target=float(length)
    )


def victim_key_ours(ready: bool, busy: bool, started_at: float) -> tuple[bool, float]:
    """Pod deletion cost: idle (or still starting) before busy, then the newest."""
    del ready
    return (busy, -started_at)


def victim_key_plain(ready: bool, busy: bool, started_at: float) -> tuple[bool, float]:
    """A ReplicaSet without deletion cost: not-ready first, then the newest; busy unknown."""
    del busy
    return (ready, -started_at)
