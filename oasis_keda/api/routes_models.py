"""``/v2/models/``: models as the scaler sees them.

The Redis model registry is the single source of truth: a model registered with the CLI
shows here, one created here is registered there, and a configuration posted here is the
one the scaler reads on its next answer. The API id is the registry's integer ``pk``; a
model created over HTTP is registered under ``<supplier_id>-<model_id>-<version_id>``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from oasis_keda import __version__
from oasis_keda.api.context import ApiContext, base_url, get_ctx, require_user
from oasis_keda.api.errors import NotFoundError, ValidationFailedError
from oasis_keda.api.serializers import model_body
from oasis_keda.api.validation import body_dict, check_model_settings, required_str
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.registry import ModelRecord

router = APIRouter(prefix="/v2/models", tags=["models"], dependencies=[Depends(require_user)])

_Ctx = Depends(get_ctx)
_Body = Body(default=None)
IDENTITY = ("supplier_id", "model_id", "version_id")


def _body(ctx: ApiContext, request: Request, record: ModelRecord) -> dict[str, Any]:
    has_settings = ctx.model_settings_override(record).is_file() or bool(record.model_dir)
    return model_body(record, base=base_url(request), has_settings=has_settings)


def _matches(value: str, exact: str | None, contains: str | None) -> bool:
    if exact is not None and value.lower() != exact.lower():
        return False
    return contains is None or contains.lower() in value.lower()


@router.get("/")
def list_models(
    request: Request,
    supplier_id: str | None = None,
    supplier_id__contains: str | None = None,
    model_id: str | None = None,
    model_id__contains: str | None = None,
    version_id: str | None = None,
    version_id__contains: str | None = None,
    user: str | None = None,
    ctx: ApiContext = _Ctx,
) -> list[dict[str, Any]]:
    """All models, filtered like upstream (``x`` iexact, ``x__contains`` icontains)."""
    return [
        _body(ctx, request, r)
        for r in ctx.registry.list()
        if _matches(r.supplier_id, supplier_id, supplier_id__contains)
        and _matches(r.model_name, model_id, model_id__contains)
        and _matches(r.version_id, version_id, version_id__contains)
    ]


def _identity(body: dict[str, Any]) -> tuple[str, str, str]:
    errors: dict[str, list[str]] = {}
    values = tuple(required_str(body, f, errors) for f in IDENTITY)
    data_files = body.get("data_files", [])
    if data_files is not None and not isinstance(data_files, list):
        errors["data_files"] = [
            f'Expected a list of items but got type "{type(data_files).__name__}".'
        ]
    if errors:
        raise ValidationFailedError(errors)
    return values  # type: ignore[return-value]


def _check_unique(ctx: ApiContext, identity: tuple[str, str, str], *, except_pk: int) -> None:
    for r in ctx.registry.list():
        if r.pk != except_pk and (r.supplier_id, r.model_name, r.version_id) == identity:
            raise ValidationFailedError(
                {
                    "non_field_errors": [
                        "The fields supplier_id, model_id, version_id must make a unique set."
                    ]
                }
            )


@router.post("/", status_code=201)
def create_model(
    request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    data = body_dict(body)
    supplier, name, version = _identity(data)
    _check_unique(ctx, (supplier, name, version), except_pk=0)
    settings = data.get("settings")
    if isinstance(settings, dict):
        check_model_settings(settings)
    registry_id = f"{supplier}-{name}-{version}"
    try:
        ctx.registry.get(registry_id)
        raise ValidationFailedError({"model_id": [f"registry id {registry_id!r} is taken"]})
    except ModelNotFoundError:
        pass
    record = ctx.registry.register(
        registry_id, supplier_id=supplier, model_name=name, version_id=version
    )
    if isinstance(settings, dict):
        _write_settings(ctx, record, settings)
    return _body(ctx, request, record)


@router.get("/{pk}/")
def get_model(pk: int, request: Request, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    return _body(ctx, request, ctx.model_by_pk(pk))


def _update(pk: int, request: Request, body: Any, ctx: ApiContext, *, partial: bool) -> Any:
    record = ctx.model_by_pk(pk)
    data = body_dict(body)
    if partial:
        data = {
            "supplier_id": record.supplier_id,
            "model_id": record.model_name,
            "version_id": record.version_id,
        } | data
    supplier, name, version = _identity(data)
    _check_unique(ctx, (supplier, name, version), except_pk=record.pk)
    record = ctx.registry.register(
        record.model_id, supplier_id=supplier, model_name=name, version_id=version
    )
    return _body(ctx, request, record)


@router.put("/{pk}/")
def update_model(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    result: dict[str, Any] = _update(pk, request, body, ctx, partial=False)
    return result


@router.patch("/{pk}/")
def patch_model(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    result: dict[str, Any] = _update(pk, request, body, ctx, partial=True)
    return result


@router.delete("/{pk}/", status_code=204)
def delete_model(pk: int, ctx: ApiContext = _Ctx) -> Response:
    record = ctx.model_by_pk(pk)
    try:
        ctx.registry.delete(record.model_id)
    except ModelNotFoundError:
        raise NotFoundError() from None
    return Response(status_code=204)


# -- settings ---------------------------------------------------------------------------
def _write_settings(ctx: ApiContext, record: ModelRecord, settings: dict[str, Any]) -> None:
    path = ctx.model_settings_override(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    os.replace(tmp, path)


@router.get("/{pk}/settings/")
def get_model_settings(pk: int, ctx: ApiContext = _Ctx) -> Any:
    """The raw model_settings JSON (posted here, else the model directory's); 404 if none."""
    settings = ctx.model_settings(ctx.model_by_pk(pk))
    if settings is None:
        raise NotFoundError()
    return settings


@router.post("/{pk}/settings/")
def post_model_settings(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> Any:
    record = ctx.model_by_pk(pk)
    data = body_dict(body)
    check_model_settings(data)
    _write_settings(ctx, record, data)
    return data


@router.delete("/{pk}/settings/")
def delete_model_settings(pk: int, ctx: ApiContext = _Ctx) -> Response:
    path = ctx.model_settings_override(ctx.model_by_pk(pk))
    if not path.is_file():
        raise NotFoundError()
    path.unlink()
    return Response(status_code=200)


@router.get("/{pk}/versions/")
def get_versions(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    ctx.model_by_pk(pk)
    from importlib.metadata import version

    return {"ver_ktools": None, "ver_oasislmf": version("oasislmf"), "ver_platform": __version__}


@router.get("/{pk}/data_files/")
def get_data_files(pk: int, ctx: ApiContext = _Ctx) -> list[dict[str, Any]]:
    """The model's complex model data files: none (they are not supported)."""
    ctx.model_by_pk(pk)
    return []


# -- configurations ---------------------------------------------------------------------
@router.get("/{pk}/chunking_configuration/")
def get_chunking(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    return ctx.model_by_pk(pk).chunking.to_json_dict()


@router.post("/{pk}/chunking_configuration/")
def post_chunking(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """Validate and store (any subset of fields); 400 ``{field: msg}`` leaves it unchanged."""
    record = ctx.model_by_pk(pk)
    try:
        return ctx.registry.set_chunking(record.model_id, body_dict(body)).to_json_dict()
    except ConfigError as exc:
        raise ValidationFailedError(exc.fields) from None
    except ModelNotFoundError:
        raise NotFoundError() from None


@router.get("/{pk}/scaling_configuration/")
def get_scaling(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    return ctx.model_by_pk(pk).scaling.to_json_dict()


@router.post("/{pk}/scaling_configuration/")
def post_scaling(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """Validate and store; the scaler's next answer uses it."""
    record = ctx.model_by_pk(pk)
    try:
        return ctx.registry.set_scaling(record.model_id, body_dict(body)).to_json_dict()
    except ConfigError as exc:
        raise ValidationFailedError(exc.fields) from None
    except ModelNotFoundError:
        raise NotFoundError() from None
