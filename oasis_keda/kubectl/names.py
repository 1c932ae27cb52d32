"""What a model's Kubernetes objects are called, and the keys that tie them to the model.

A model id is free text in the registry; object names and label values must be DNS-1123
labels. This module owns that mapping (:func:`resource_name`) and the label and annotation
keys, so that the manifest generator, the ``kubectl oasis`` plugin (which finds a model's
objects again) and the local runtime (which names its tasks after them) agree. Pure.
"""

from __future__ import annotations

import hashlib
import re

PART_OF = "oasis-keda"
WORKER_COMPONENT = "worker"
#: Annotation holding the exact model id (names and labels carry a sanitised form).
MODEL_ANNOTATION = "oasis-keda.io/model-id"
#: Label selecting a model's worker pods and its ScaledObject.
MODEL_LABEL = "oasis-keda.io/model"

_NAME_MAX = 63  # DNS-1123 label: also the limit of label values
_WORKER_PREFIX = "oasis-worker-"


def resource_name(model_id: str) -> str:
    """The DNS-1123 name of a model's Deployment and ScaledObject (``oasis-worker-<id>``).

    Ids that are not already valid names are lower-cased, cleaned and given a short hash
    suffix, so two ids never share a name; long ids are shortened the same way.
    """
    clean = re.sub(r"[^a-z0-9-]+", "-", model_id.lower()).strip("-") or "model"
    name = _WORKER_PREFIX + clean
    if clean == model_id and len(name) <= _NAME_MAX:
        return name
    # the hash of the exact id keeps ids that clean to the same text apart
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    head = name[: _NAME_MAX - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"
