"""Request-body checks shared by the routes: required strings, and settings JSON validated
against the ods_tools schemas as upstream does. Each returns clean values or raises
:class:`ValidationFailedError` naming the field."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from oasis_keda.api.errors import ValidationFailedError

logger = logging.getLogger(__name__)

REQUIRED = "This field is required."
MAX_NAME_LENGTH = 255


def body_dict(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise ValidationFailedError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(body).__name__}."
                ]
            }
        )
    return dict(body)


def required_str(body: Mapping[str, Any], field: str, errors: dict[str, list[str]]) -> str:
    value = body.get(field)
    if value is None or value == "":
        errors[field] = [REQUIRED]
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        errors[field] = ["Not a valid string."]
        return ""
    text = str(value).strip()
    if not text:
        errors[field] = ["This field may not be blank."]
    elif len(text) > MAX_NAME_LENGTH:
        errors[field] = [f"Ensure this field has no more than {MAX_NAME_LENGTH} characters."]
    elif "\x00" in text:
        errors[field] = ["Null characters are not allowed."]
    return text


def pk_field(body: Mapping[str, Any], field: str, errors: dict[str, list[str]]) -> int:
    value = body.get(field)
    if value is None or value == "":
        errors[field] = [REQUIRED]
        return 0
    if isinstance(value, bool):
        errors[field] = [f"Incorrect type. Expected pk value, received {type(value).__name__}."]
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        errors[field] = [f"Incorrect type. Expected pk value, received {type(value).__name__}."]
        return 0


def _validate_with(handler_name: str, data: Any) -> dict[str, Any]:
    from ods_tools.oed import settings as ods_settings

    if not isinstance(data, dict):
        return {"non_field_errors": ["settings must be a JSON object"]}
    handler = getattr(ods_settings, handler_name).make()
    try:
        ok, errors = handler.validate(data, raise_error=False)
    except Exception as exc:  # noqa: BLE001 - ods_tools' extra checks crash on odd shapes
        logger.debug("settings validation crashed: %s", exc)
        return {"non_field_errors": [f"settings could not be validated: {exc}"]}
    return {} if ok else {str(k): v for k, v in errors.items()}


def check_analysis_settings(data: Any) -> None:
    errors = _validate_with("AnalysisSettingHandler", data)
    if errors:
        raise ValidationFailedError(errors)


def check_model_settings(data: Any) -> None:
    errors = _validate_with("ModelSettingHandler", data)
    if errors:
        raise ValidationFailedError(errors)
