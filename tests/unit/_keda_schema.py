"""Validators for KEDA objects from the CRD schemas in ../shared/keda-crds.

The API server prunes unknown fields silently; here every object schema that lists its
properties and does not preserve unknown fields is closed (``additionalProperties: false``),
so a misspelt field fails the test instead of vanishing on the cluster. Skips the calling
test when the CRDs are not present.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import jsonschema
import pytest
import yaml

from tests.shared_data import KEDA_CRDS as CRD_DIR

CRD_FILES = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


def _close(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _close(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_close(v) for v in schema]
    return schema


@functools.cache
def _schema(kind: str) -> dict[str, Any]:
    path = CRD_DIR / CRD_FILES[kind]
    crd = yaml.safe_load(path.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = _close(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # apiVersion/kind/metadata are checked by the API server, not the CRD: pin them here.
    schema["properties"]["apiVersion"] = {"const": "keda.sh/v1alpha1"}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "spec", "metadata"})
    return schema


def keda_validator(kind: str) -> jsonschema.protocols.Validator:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KEDA CRDs not present at {CRD_DIR}")
    schema = _schema(kind)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)
