"""Reading an oasislmf model directory: the ``oasislmf.json``-style config at its root.

The config names the model data, the lookup config and ``model_settings.json`` with
paths relative to the directory. From them we take the model's identity (the lookup
config's ``model`` section) and its event sets with their ``number_of_events``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oasis_keda.core.errors import OasisKedaError

CONFIG_NAME = "oasislmf.json"


class ModelDirError(OasisKedaError):
    """The model directory is missing a file or a file is unreadable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventSet:
    id: str
    desc: str
    number_of_events: int | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelDir:
    root: Path
    model_data_dir: Path
    lookup_config_json: Path
    lookup_data_dir: Path
    model_settings_json: Path
    supplier_id: str | None
    model_name: str | None
    version_id: str | None
    event_sets: tuple[EventSet, ...]
    default_event_set: str | None
    config: dict[str, Any]

    @property
    def config_path(self) -> Path:
        """The model's ``oasislmf.json``."""
        return self.root / CONFIG_NAME

    def event_set(self, set_id: str | None) -> EventSet | None:
        """The event set by id, or the default one when ``set_id`` is None."""
        wanted = set_id or self.default_event_set
        for item in self.event_sets:
            if item.id == wanted:
                return item
        return self.event_sets[0] if set_id is None and self.event_sets else None

    def events_for(self, analysis_settings: Mapping[str, Any] | None) -> int | None:
        """``number_of_events`` of the event set an analysis's settings choose
        (``model_settings.event_set``), else of the model's default; None when the model
        does not say (or the chosen set does not exist). Loss chunking plans on it."""
        chosen = None
        if isinstance(analysis_settings, Mapping):
            model_settings = analysis_settings.get("model_settings")
            if isinstance(model_settings, Mapping) and model_settings.get("event_set") is not None:
                chosen = str(model_settings["event_set"])
        event_set = self.event_set(chosen)
        return None if event_set is None else event_set.number_of_events


def _read_json(path: Path, what: str) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise ModelDirError(f"{what} not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{what} {path} is unreadable: {exc}") from exc


def _path(root: Path, config: dict[str, Any], key: str, config_path: Path) -> Path:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise ModelDirError(f"{config_path}: key {key!r} is missing")
    path = (root / value).resolve()
    if not path.exists():
        raise ModelDirError(f"{config_path}: {key} names {path}, which does not exist")
    return path


def _event_sets(settings: Any, path: Path) -> tuple[tuple[EventSet, ...], str | None]:
    try:
        event_set = settings["model_settings"]["event_set"]
        options = event_set["options"]
    except (KeyError, TypeError):
        return (), None
    sets = []
    for i, option in enumerate(options):
        if not isinstance(option, dict) or "id" not in option:
            raise ModelDirError(f"{path}: model_settings.event_set.options[{i}] has no 'id'")
        n = option.get("number_of_events")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ModelDirError(
                f"{path}: model_settings.event_set.options[{i}].number_of_events "
                f"must be a positive integer, got {n!r}"
            )
        sets.append(
            EventSet(id=str(option["id"]), desc=str(option.get("desc", "")), number_of_events=n)
        )
    default = event_set.get("default")
    return tuple(sets), (str(default) if default is not None else None)


def _load_config(config_path: Path) -> dict[str, Any]:
    """The config as oasislmf reads it: top-level keys lower-cased, old names renamed
    through its compatibility profile (so ``lookup_config_file_path`` is
    ``lookup_config_json``)."""
    from oasislmf.utils.inputs import update_config

    config = _read_json(config_path, "model config")
    if not isinstance(config, dict):
        raise ModelDirError(f"{config_path} must hold a JSON object")
    renamed = update_config({str(k).lower(): v for k, v in config.items()})
    return dict(renamed)


def read_model_dir(directory: Path | str) -> ModelDir:
    """Read and check a model directory; raise :class:`ModelDirError` naming what is wrong."""
    root = Path(directory).resolve()
    config_path = root / CONFIG_NAME
    config = _load_config(config_path)
    lookup_config_json = _path(root, config, "lookup_config_json", config_path)
    settings_json = _path(root, config, "model_settings_json", config_path)
    lookup = _read_json(lookup_config_json, "lookup config")
    settings = _read_json(settings_json, "model settings")
    identity = lookup.get("model", {}) if isinstance(lookup, dict) else {}
    event_sets, default = _event_sets(settings, settings_json)
    lookup_data = config.get("lookup_data_dir")
    return ModelDir(
        root=root,
        model_data_dir=_path(root, config, "model_data_dir", config_path),
        lookup_config_json=lookup_config_json,
        lookup_data_dir=(root / lookup_data).resolve()
        if lookup_data
        else lookup_config_json.parent,
        model_settings_json=settings_json,
        supplier_id=identity.get("supplier_id"),
        model_name=identity.get("model_id"),
        version_id=identity.get("model_version"),
        event_sets=event_sets,
        default_event_set=default,
        config=config,
    )
