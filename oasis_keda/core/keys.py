"""The Redis key contract shared by every component.

All keys the project writes live under one prefix so that a shared Redis can hold other
data. Celery's own keys (queue lists, `unacked`, `unacked_index`) are not ours and keep
their Celery names; the helpers here only compute them.
"""

from __future__ import annotations

PREFIX = "oasis-keda"

#: HASH model_id -> JSON model record (id, queue, configurations, metadata).
MODELS = f"{PREFIX}:models"
#: HASH of global settings (e.g. ``global_worker_limit``).
SETTINGS = f"{PREFIX}:settings"
SETTING_GLOBAL_WORKER_LIMIT = "global_worker_limit"
#: STRING set once the registry cache (MODELS, SETTINGS) holds what the records database
#: holds. Absent after a Redis restart that lost it: until the controller rebuilds the
#: cache, a model missing from MODELS is unknown, not unregistered (the scaler answers
#: UNAVAILABLE, never NOT_FOUND or 0).
REGISTRY_LOADED = f"{PREFIX}:registry:loaded"

#: Celery's priority separator for the Redis transport: ``<queue>\x06\x16<p>``.
PRIORITY_SEP = "\x06\x16"
#: Priority steps kombu's Redis transport uses by default (0 is stored in the bare list).
PRIORITY_STEPS = (0, 3, 6, 9)

#: Celery queue the task controller consumes main tasks from.
CONTROLLER_QUEUE = "oasis-keda.controller"
#: Prefix of the Celery queue derived from a model id when none is given.
MODEL_QUEUE_PREFIX = "oasis-keda.model."


#: HASH of the global worker budget's grants, written by the scaler: ``model_id`` -> workers
#: granted; ``~version`` -> a counter bumped on every write (compare-and-set); and
#: ``~raise:<model_id>`` -> ``"<count>:<until ms>"``, a raised grant whose workers may still
#: be starting (counted as held until they are live or the start allowance ends).
BUDGET_GRANTS = f"{PREFIX}:budget:grants"
BUDGET_VERSION_FIELD = "~version"
BUDGET_RAISE_PREFIX = "~raise:"

#: HASH model_id -> JSON ``{"desired", "actual", "metric", "active", "reason", "at"}``, written
#: by the local autoscaler (``oasis-keda up``): desired and actual workers per model.
RUNTIME_REPLICAS = f"{PREFIX}:runtime:replicas"

#: LIST of JSON outcomes (newest first, capped) of settled stages: how the estimates of the
#: time left made during a stage compared with its actual end (:mod:`oasis_keda.core.eta`).
ETA_OUTCOMES = f"{PREFIX}:eta:outcomes"


def queue_lists(queue: str) -> list[str]:
    """Every Redis list that holds waiting messages of a Celery queue."""
    return [queue if p == 0 else f"{queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


def default_queue(model_id: str) -> str:
    """The Celery queue for a model registered without an explicit one."""
    return f"{MODEL_QUEUE_PREFIX}{model_id}"


def leases_tasks(queue: str) -> str:
    """ZSET of sub-tasks reserved or running from ``queue``; score = lease deadline."""
    return f"{PREFIX}:leases:tasks:{{{queue}}}"


def leases_busy(queue: str) -> str:
    """ZSET of worker nodes busy on ``queue``; score = lease deadline."""
    return f"{PREFIX}:leases:busy:{{{queue}}}"


def leases_live(queue: str) -> str:
    """ZSET of worker nodes alive on ``queue`` (busy or idle); score = lease deadline."""
    return f"{PREFIX}:leases:live:{{{queue}}}"


def display_list(name: str) -> str:
    """A queue list's name for logs: the priority separator spelled out."""
    return name.replace(PRIORITY_SEP, ":priority-step-")


def main_tasks(model_id: str) -> str:
    """HASH ``<analysis_id>:<stage>`` -> ``"<priority>:<requested ms>"`` of the model's main
    tasks in progress (a bare ``"<priority>"`` is read as requested at time 0)."""
    return f"{PREFIX}:main:{{{model_id}}}"


def planned(model_id: str) -> str:
    """HASH ``<analysis_id>:<stage>`` -> sub-tasks planned and not finished yet, written by
    the task controller when it plans a stage (and, for a generate-and-run, the loss stage
    it will plan), decremented as sub-tasks complete."""
    return f"{PREFIX}:planned:{{{model_id}}}"


def activity_channel(model_id: str) -> str:
    """Pub/sub channel announcing that a model's state may have changed."""
    return f"{PREFIX}:activity:{model_id}"


def eta_estimates(analysis_id: int, run_number: int, stage: str) -> str:
    """LIST of ``"<epoch s>:<seconds left>"``: the estimates made during one stage of a run,
    settled (compared with the actual end, then deleted) when the stage ends."""
    return f"{PREFIX}:eta:{analysis_id}:{run_number}:{stage}"


def eta_due(analysis_id: int, run_number: int, stage: str) -> str:
    """STRING with a short expiry: a worker recorded an estimate of the stage lately."""
    return f"{PREFIX}:eta-due:{analysis_id}:{run_number}:{stage}"
