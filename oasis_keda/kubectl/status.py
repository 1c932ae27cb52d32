"""What ``kubectl oasis status`` shows, computed from plain data (pure).

Inputs come from three places the adapters read: the registry and queue state (Redis), the
scaler (gRPC), the Deployments and ScaledObjects (Kubernetes API). This module joins them
per model and explains the usual surprises in words: a scaler that cannot be reached, a
ScaledObject naming a model the registry does not know, a model held below its formula by
the global worker budget, a model with no Deployment yet.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from oasis_keda.core.config import ScalingConfig
from oasis_keda.kubectl.names import MODEL_ANNOTATION
from oasis_keda.kubectl.scaler_probe import ScalerReading
from scaler.strategies import ModelState, desired_workers

Json = dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelStatus:
    """One row of the status table."""

    model_id: str
    registered: bool
    strategy: str | None = None
    state: ModelState | None = None
    formula: int | None = None
    """Workers the model's own configuration asks for (before the global budget)."""
    scaler: ScalerReading | None = None
    replicas: int | None = None
    ready: int | None = None
    max_replicas: int | None = None
    so_ready: str = "-"
    so_active: str = "-"
    notes: tuple[str, ...] = ()

    def to_json(self) -> Json:
        state = dataclasses.asdict(self.state) if self.state else None
        return {
            "model_id": self.model_id,
            "registered": self.registered,
            "strategy": self.strategy,
            "queue_state": state,
            "formula_workers": self.formula,
            "desired_workers": self.scaler.desired if self.scaler else None,
            "scaler_error": self.scaler.error if self.scaler else "scaler not queried",
            "replicas": self.replicas,
            "ready": self.ready,
            "max_replicas": self.max_replicas,
            "scaledobject_ready": self.so_ready,
            "scaledobject_active": self.so_active,
            "notes": list(self.notes),
        }


def model_id_of(obj: Mapping[str, Any]) -> str | None:
    """The model a Deployment or ScaledObject belongs to (annotation, then trigger)."""
    meta = obj.get("metadata") or {}
    annotated = (meta.get("annotations") or {}).get(MODEL_ANNOTATION)
    if annotated:
        return str(annotated)
    for trigger in (obj.get("spec") or {}).get("triggers") or []:
        model = (trigger.get("metadata") or {}).get("model")
        if model:
            return str(model)
    return None


def condition(obj: Mapping[str, Any], kind: str) -> str:
    """``True``/``False``/``Unknown`` of a status condition, ``-`` when absent."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            status = str(cond.get("status", "Unknown"))
            reason = cond.get("reason")
            return f"{status} ({reason})" if status == "False" and reason else status
    return "-"


def trigger_metadata(so: Mapping[str, Any]) -> dict[str, str]:
    for trigger in (so.get("spec") or {}).get("triggers") or []:
        if trigger.get("type") in ("external-push", "external"):
            return {str(k): str(v) for k, v in (trigger.get("metadata") or {}).items()}
    return {}


def build_rows(
    *,
    configs: Mapping[str, ScalingConfig] | None,
    states: Mapping[str, ModelState],
    deployments: Sequence[Mapping[str, Any]],
    scaled_objects: Sequence[Mapping[str, Any]],
    readings: Mapping[str, ScalerReading],
    global_limit: int | None,
) -> list[ModelStatus]:
    """One row per model known to the registry or to the cluster.

    ``configs`` is ``None`` when the registry could not be read (no Redis URL given).
    """
    deps = {m: d for d in deployments if (m := model_id_of(d))}
    sos = {m: s for s in scaled_objects if (m := model_id_of(s))}
    ids = sorted(set(configs or {}) | set(deps) | set(sos))
    rows = []
    for model_id in ids:
        config = configs.get(model_id) if configs is not None else None
        registered = config is not None
        state = states.get(model_id)
        reading = readings.get(model_id)
        dep, so = deps.get(model_id), sos.get(model_id)
        formula = desired_workers(config, state) if config and state else None
        notes = []
        if configs is not None and not registered:
            notes.append("model unknown to the registry: the scaler refuses it; register it")
        if dep is None:
            notes.append(
                f"no worker Deployment: oasis-keda manifests model {model_id} | kubectl apply -f -"
            )
        if so is None:
            notes.append("no ScaledObject: this model does not autoscale")
        if reading is not None and reading.error and not reading.unreachable:
            notes.append(f"scaler error: {reading.error}")
        desired = reading.desired if reading else None
        if (
            global_limit is not None
            and formula is not None
            and desired is not None
            and desired < formula
        ):
            notes.append(
                f"capped by the global worker budget: wants {formula}, granted {desired} "
                f"(global_worker_limit {global_limit})"
            )
        so_spec = (so or {}).get("spec") or {}
        max_replicas = so_spec.get("maxReplicaCount")
        if desired is not None and isinstance(max_replicas, int) and desired > max_replicas:
            notes.append(f"desired {desired} above maxReplicaCount {max_replicas}: regenerate")
        dep_status = (dep or {}).get("status") or {}
        rows.append(
            ModelStatus(
                model_id=model_id,
                registered=registered,
                strategy=config.scaling_strategy.value if config else None,
                state=state,
                formula=formula,
                scaler=reading,
                replicas=((dep or {}).get("spec") or {}).get("replicas") if dep else None,
                ready=int(dep_status.get("readyReplicas") or 0) if dep else None,
                max_replicas=max_replicas if isinstance(max_replicas, int) else None,
                so_ready=condition(so, "Ready") if so else "-",
                so_active=condition(so, "Active") if so else "-",
                notes=tuple(notes),
            )
        )
    return rows


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def render_table(
    rows: Sequence[ModelStatus], *, global_limit: int | None, registry_note: str = ""
) -> str:
    """Human output: an aligned table, then one line per note."""
    header = (
        "MODEL",
        "STRATEGY",
        "WAITING",
        "RUNNING",
        "BUSY",
        "MAIN",
        "DESIRED",
        "REPLICAS",
        "READY",
        "SO-READY",
        "SO-ACTIVE",
    )
    table = [header]
    for r in rows:
        s = r.state
        table.append(
            (
                r.model_id,
                _cell(r.strategy),
                _cell(s.waiting if s else None),
                _cell(s.reserved if s else None),
                _cell(s.busy if s else None),
                _cell(s.main_tasks if s else None),
                _cell(r.scaler.desired if r.scaler else None),
                _cell(r.replicas),
                _cell(r.ready),
                r.so_ready,
                r.so_active,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    if not rows:
        lines.append("(no models registered and no oasis worker Deployments found)")
    limit = "none" if global_limit is None else str(global_limit)
    lines.append(f"global worker limit: {limit}")
    if registry_note:
        lines.append(registry_note)
    for r in rows:
        lines.extend(f"{r.model_id}: {note}" for note in r.notes)
    return "\n".join(lines) + "\n"


def render_json(rows: Sequence[ModelStatus], *, global_limit: int | None) -> str:
    payload = {"global_worker_limit": global_limit, "models": [r.to_json() for r in rows]}
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"
