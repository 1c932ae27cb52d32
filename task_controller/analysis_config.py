"""What a stage of an analysis runs with, resolved the same way for a request and a dispatch.

The model directory of the analysis's registered model, the analysis settings (its own, or
for input generation before it has any, the defaults its model names in ``oasislmf.json``),
the event count loss chunking plans on, and the chunking configuration (the analysis's own,
else the model's); at creation, the exposure files' formats and the settings' schema. A
request checks with these what the dispatch will later use, so a stage that the dispatch
would refuse is refused before anything is queued. Every problem is a
:class:`~task_controller.errors.RequestError` naming the field at fault.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oasis_keda.core import exposure_files
from oasis_keda.core.config import ChunkingConfig, parse_config
from oasis_keda.core.model_dir import ModelDir, ModelDirError, read_model_dir
from oasis_keda.core.registry import ModelRecord
from oasis_keda.core.store import Analysis
from task_controller.errors import RequestError


def model_dir_of(model: ModelRecord) -> ModelDir | None:
    """The model's directory, read and checked; None if the model has none registered."""
    if not model.model_dir:
        return None
    try:
        return read_model_dir(model.model_dir)
    except ModelDirError as exc:
        raise RequestError({"model_dir": str(exc)}) from exc


def events_of(model_dir: ModelDir | None, analysis: Analysis) -> int | None:
    """Events of the analysis's chosen event set; None when unknown (no model directory, or
    the model does not say)."""
    return model_dir.events_for(analysis.settings) if model_dir else None


def chunking_of(analysis: Analysis, model: ModelRecord) -> ChunkingConfig:
    """The analysis's own chunking configuration if set, else the model's."""
    if analysis.chunking_configuration:
        return parse_config(ChunkingConfig, analysis.chunking_configuration)
    return model.chunking


def default_settings(model_dir: ModelDir) -> dict[str, Any] | None:
    """The analysis settings the model names in its ``oasislmf.json``, if any."""
    name = model_dir.config.get("analysis_settings_json")
    if not isinstance(name, str) or not name:
        return None
    path = model_dir.root / name
    return read_settings(path) if path.is_file() else None


def read_settings(path: Path) -> dict[str, Any]:
    """An analysis settings file: a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RequestError({"settings": f"{path} is not readable JSON: {exc}"}) from exc
    if not isinstance(data, dict):
        raise RequestError({"settings": f"{path} must hold a JSON object"})
    return data


def check_settings(path: Path, settings: dict[str, Any]) -> None:
    """Refuse analysis settings the ods_tools schema refuses (as the REST API does when
    they are posted), naming each field at fault."""
    from ods_tools.oed import settings as ods_settings

    handler = ods_settings.AnalysisSettingHandler.make()
    try:
        ok, errors = handler.validate(settings, raise_error=False)
    except Exception as exc:  # ods_tools' extra checks crash on odd shapes
        raise RequestError({"settings": f"{path} could not be validated: {exc}"}) from exc
    if not ok:
        found = "; ".join(f"{field}: {message}" for field, message in errors.items())
        raise RequestError({"settings": f"{path} is not valid analysis settings: {found}"})


def exposure_formats(exposure: dict[str, Path | None]) -> dict[str, str]:
    """Each given exposure file's format (CSV or parquet, by content), after checking it is
    readable and has its required OED columns; a refusal names the file."""
    formats = {}
    for kind, path in exposure.items():
        if path is None:
            continue
        if not path.is_file():
            raise RequestError({kind: f"{path} is not a readable file"})
        try:
            formats[kind] = exposure_files.check(path, kind)
        except exposure_files.ExposureFileError as exc:
            raise RequestError({kind: f"{path}: {exc}"}) from exc
    return formats
