"""A small kustomize build, enough for manifests/ (no kustomize binary on this machine).

Supports what our kustomizations use, and fails loudly on anything else so that a new
feature cannot slip past the tests unresolved: ``resources`` (files and directories),
``components``, ``namespace``, ``labels`` (metadata only), ``images``, ``secretGenerator``
(literals) with ``generatorOptions.disableNameSuffixHash``, and ``patches`` (strategic-merge
files matched by kind/name, or JSON 6902 lists with a ``target``). A patch that matches no
object, or a JSON pointer that does not resolve, is an error, as in kustomize.
"""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KNOWN_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "labels",
    "images",
    "secretGenerator",
    "generatorOptions",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Lists merged by element name in strategic merge patches (the ones our patches touch).
MERGE_BY_NAME = {"containers", "initContainers", "env", "volumes", "volumeMounts", "ports"}


class KustomizeError(Exception):
    pass


def load_yaml_documents(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def build(directory: Path) -> list[Obj]:
    """The objects ``kustomize build directory`` would print (in resource order)."""
    return _build(directory.resolve(), expect_kind="Kustomization")


def _build(directory: Path, *, expect_kind: str) -> list[Obj]:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text())
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")
    if k.get("kind", "Kustomization") != expect_kind:
        raise KustomizeError(f"{kfile}: kind {k.get('kind')!r}, expected {expect_kind}")
    objects: list[Obj] = []
    for entry in k.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(_build(target, expect_kind="Kustomization"))
        elif target.is_file():
            objects.extend(load_yaml_documents(target))
        else:
            raise KustomizeError(f"{kfile}: resource {entry!r} does not exist")
    objects.extend(_secrets(k, kfile))
    for entry in k.get("components") or []:
        objects = _apply_component((directory / entry).resolve(), objects)
    objects = _transform(k, kfile, directory, objects)
    _check_unique(objects, kfile)
    return objects


def _apply_component(directory: Path, objects: list[Obj]) -> list[Obj]:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"component {directory} has no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text())
    if k.get("kind") != "Component":
        raise KustomizeError(f"{kfile}: a component must have kind Component")
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")
    for entry in k.get("resources") or []:
        target = (directory / entry).resolve()
        if not target.is_file():
            raise KustomizeError(f"{kfile}: resource {entry!r} does not exist")
        objects = objects + load_yaml_documents(target)
    return _transform(k, kfile, directory, objects)


def _secrets(k: Obj, kfile: Path) -> list[Obj]:
    out = []
    hashless = (k.get("generatorOptions") or {}).get("disableNameSuffixHash", False)
    for gen in k.get("secretGenerator") or []:
        if not hashless:
            raise KustomizeError(f"{kfile}: hashed generator names are not supported here")
        if set(gen) - {"name", "namespace", "literals", "type"}:
            raise KustomizeError(f"{kfile}: unsupported secretGenerator fields in {gen}")
        data = {}
        for literal in gen.get("literals") or []:
            key, _, value = literal.partition("=")
            data[key] = base64.b64encode(value.encode()).decode()
        meta: Obj = {"name": gen["name"]}
        if gen.get("namespace"):
            meta["namespace"] = gen["namespace"]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta,
                "type": gen.get("type", "Opaque"),
                "data": data,
            }
        )
    return out


def _transform(k: Obj, kfile: Path, directory: Path, objects: list[Obj]) -> list[Obj]:
    objects = copy.deepcopy(objects)
    for patch in k.get("patches") or []:
        objects = _apply_patch(patch, kfile, directory, objects)
    if k.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = k["namespace"]
    for entry in k.get("labels") or []:
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise KustomizeError(f"{kfile}: only metadata labels are supported")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    for image in k.get("images") or []:
        _set_image(objects, image)
    return objects


def _set_image(objects: list[Obj], image: Obj) -> None:
    for obj in objects:
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            name, _, _tag = c["image"].partition(":")
            if name == image["name"]:
                new = image.get("newName", name)
                c["image"] = f"{new}:{image['newTag']}" if image.get("newTag") else new


def _matches(obj: Obj, target: Obj) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    checks = {
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "group": group,
        "version": version,
        "namespace": obj["metadata"].get("namespace"),
    }
    for key, value in target.items():
        if key == "labelSelector":
            labels = obj["metadata"].get("labels") or {}
            for term in value.split(","):
                lk, _, lv = term.partition("=")
                if labels.get(lk.strip()) != lv.strip():
                    return False
        elif key in checks:
            if checks[key] != value:
                return False
        else:
            raise KustomizeError(f"unsupported patch target field {key!r}")
    return True


def _apply_patch(patch: Obj, kfile: Path, directory: Path, objects: list[Obj]) -> list[Obj]:
    if "path" in patch:
        path = directory / patch["path"]
        if not path.is_file():
            raise KustomizeError(f"{kfile}: patch file {patch['path']!r} does not exist")
        body = list(yaml.safe_load_all(path.read_text()))
    else:
        body = list(yaml.safe_load_all(patch["patch"]))
    if len(body) == 1 and isinstance(body[0], list):  # JSON 6902
        target = patch.get("target")
        if not target:
            raise KustomizeError(f"{kfile}: a JSON 6902 patch needs a target")
        hits = [o for o in objects if _matches(o, target)]
        if not hits:
            raise KustomizeError(f"{kfile}: patch {patch} matches no object")
        for obj in hits:
            for op in body[0]:
                _json6902(obj, op, kfile)
        return objects
    for doc in body:
        target = patch.get("target") or {
            "kind": doc["kind"],
            "name": doc["metadata"]["name"],
        }
        hits = [o for o in objects if _matches(o, target)]
        if not hits:
            raise KustomizeError(f"{kfile}: patch for {target} matches no object")
        for obj in hits:
            _strategic_merge(obj, doc)
    return objects


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _json6902(obj: Obj, op: Obj, kfile: Path) -> None:
    parts = _pointer(op["path"])
    parent: Any = obj
    for part in parts[:-1]:
        try:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise KustomizeError(f"{kfile}: path {op['path']} does not resolve") from exc
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        _json6902_list(parent, last, op, kfile)
        return
    if not isinstance(parent, dict):
        raise KustomizeError(f"{kfile}: path {op['path']} does not resolve")
    if kind in ("replace", "remove") and last not in parent:
        raise KustomizeError(f"{kfile}: {kind} of missing {op['path']}")
    if kind in ("add", "replace"):
        parent[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[last]
    else:
        raise KustomizeError(f"{kfile}: unsupported op {kind}")


def _json6902_list(parent: list[Any], last: str, op: Obj, kfile: Path) -> None:
    kind = op["op"]
    if kind == "add" and last == "-":
        parent.append(copy.deepcopy(op["value"]))
        return
    index = int(last)
    if not 0 <= index < len(parent) + (kind == "add"):
        raise KustomizeError(f"{kfile}: index {op['path']} out of range")
    if kind == "add":
        parent.insert(index, copy.deepcopy(op["value"]))
    elif kind == "replace":
        parent[index] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[index]
    else:
        raise KustomizeError(f"{kfile}: unsupported op {kind}")


def _strategic_merge(base: Obj, patch: Obj) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _strategic_merge(base[key], value)
        elif (
            key in MERGE_BY_NAME
            and isinstance(value, list)
            and isinstance(base.get(key), list)
            and all(isinstance(v, dict) and "name" in v for v in value)
        ):
            existing = {item.get("name"): item for item in base[key]}
            for item in value:
                if item["name"] in existing:
                    _strategic_merge(existing[item["name"]], item)
                else:
                    base[key].append(copy.deepcopy(item))
        else:
            base[key] = copy.deepcopy(value)


def _check_unique(objects: list[Obj], kfile: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{kfile}: duplicate object {key}")
        seen.add(key)


def kustomization_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
