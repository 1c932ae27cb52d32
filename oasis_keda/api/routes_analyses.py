"""``/v2/analyses/``: analyses, their settings and files, and the generate/run/cancel
requests (handed to the task controller through :mod:`oasis_keda.api.actions`)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from oasis_keda.api import actions, analyses_service, archives
from oasis_keda.api.analyses_service import get_analysis
from oasis_keda.api.context import ApiContext, base_url, get_ctx, require_user
from oasis_keda.api.errors import NotFoundError, ValidationFailedError
from oasis_keda.api.files import UPLOAD_OPENAPI, text_response
from oasis_keda.api.json_depth import check_depth
from oasis_keda.api.serializers import (
    ANALYSIS_FILE_FIELDS,
    related_file_body,
    stored_name,
    sub_task_body,
)
from oasis_keda.api.uploads import receive_checked, serve
from oasis_keda.api.validation import body_dict
from oasis_keda.core import eta
from oasis_keda.core.config import ChunkingConfig, parse_config, update_config
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.statuses import IN_PROGRESS
from oasis_keda.core.store import Analysis, StoredFile

router = APIRouter(prefix="/v2/analyses", tags=["analyses"], dependencies=[Depends(require_user)])

_Ctx = Depends(get_ctx)
_Body = Body(default=None)


def _detail(ctx: ApiContext, pk: int, request: Request) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        return analyses_service.body(ctx, session, item, base=base_url(request))


@router.get("/")
def list_analyses(
    request: Request,
    name: str | None = None,
    name__contains: str | None = None,
    status: str | None = None,
    status__in: str | None = None,
    model: str | None = None,
    model__in: str | None = None,
    run_mode: str | None = None,
    user: str | None = None,
    ctx: ApiContext = _Ctx,
) -> list[dict[str, Any]]:
    query = select(Analysis).order_by(Analysis.id)
    if name is not None:
        query = query.where(func.lower(Analysis.name) == name.lower())
    if name__contains is not None:
        query = query.where(Analysis.name.icontains(name__contains, autoescape=True))
    if status is not None:
        query = query.where(Analysis.status == status.upper())
    if status__in is not None:
        query = query.where(Analysis.status.in_([s.strip().upper() for s in status__in.split(",")]))
    if run_mode is not None:
        query = query.where(Analysis.run_mode == run_mode.upper())
    wanted = [m for m in (model, *(model__in or "").split(",")) if m]
    if wanted:
        ids = []
        for pk in wanted:
            try:
                ids.append(ctx.registry.get_by_pk(int(pk)).model_id)
            except (ValueError, ModelNotFoundError):
                continue
        query = query.where(Analysis.model_id.in_(ids))
    with ctx.session() as session:
        items = session.scalars(query).all()
        return [analyses_service.body(ctx, session, a, base=base_url(request)) for a in items]


@router.post("/", status_code=201)
def create_analysis(
    request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    return analyses_service.create(ctx, body, base=base_url(request))


@router.get("/{pk}/")
def get_analysis_detail(pk: int, request: Request, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    return _detail(ctx, pk, request)


@router.put("/{pk}/")
def update_analysis(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    return analyses_service.update(ctx, pk, body, base=base_url(request), partial=False)


@router.patch("/{pk}/")
def patch_analysis(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    return analyses_service.update(ctx, pk, body, base=base_url(request), partial=True)


@router.post("/{pk}/copy/")
def copy_analysis(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """A copy of the analysis in status NEW (same portfolio, model, settings, inputs)."""
    return analyses_service.copy(ctx, pk, body, base=base_url(request))


@router.get("/{pk}/data_files/")
def analysis_data_files(pk: int, ctx: ApiContext = _Ctx) -> list[dict[str, Any]]:
    """Complex model data files of the analysis: none (they are not supported)."""
    with ctx.session() as session:
        get_analysis(session, pk)
    return []


@router.get("/{pk}/run_progress/")
def run_progress(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    """Events done of the run's events, worded as the platform words it, and the estimate
    of the time left (``eta``, null when no stage is in progress or nothing is known)."""
    with ctx.session() as session:
        item = get_analysis(session, pk)
        done, total = item.num_events_complete, item.num_events_total
        estimate = eta.describe(session, ctx.redis_client, item)
    return {"Status": f"{done}/{total} gul stages complete", "eta": estimate}


@router.delete("/{pk}/", status_code=204)
def delete_analysis(pk: int, ctx: ApiContext = _Ctx) -> Response:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        if item.status in IN_PROGRESS:
            raise ValidationFailedError(
                {"status": [f"Analysis is {item.status}: cancel it before deleting it."]}
            )
    analyses_service.delete(ctx, pk)
    return Response(status_code=204)


# -- settings ---------------------------------------------------------------------------
@router.get("/{pk}/settings/")
def get_settings(pk: int, ctx: ApiContext = _Ctx) -> Any:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        if item.settings_file_id is None or item.settings is None:
            raise NotFoundError()
        return item.settings


@router.post("/{pk}/settings/")
def post_settings(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """Validate analysis settings (ods_tools schema) and attach them as ``settings_file``."""
    return related_file_body(analyses_service.store_settings(ctx, pk, body_dict(body)))


def _clear_settings(pk: int, ctx: ApiContext) -> Response:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        if item.settings_file_id is None:
            raise NotFoundError()
        item.settings_file_id = None
        item.settings = None
        session.commit()
    return Response(status_code=200)


@router.delete("/{pk}/settings/")
def delete_settings(pk: int, ctx: ApiContext = _Ctx) -> Response:
    return _clear_settings(pk, ctx)


@router.delete("/{pk}/settings_file/")
def delete_settings_file(pk: int, ctx: ApiContext = _Ctx) -> Response:
    return _clear_settings(pk, ctx)


@router.post("/{pk}/settings_file/", openapi_extra=UPLOAD_OPENAPI)
async def upload_settings_file(pk: int, request: Request, ctx: ApiContext = _Ctx) -> Any:
    def exists() -> None:
        with ctx.session() as session:
            get_analysis(session, pk)

    await run_in_threadpool(exists)
    received = await receive_checked(request, ctx)
    try:
        raw = received.path.read_bytes()
    finally:
        received.discard()
    refusal = check_depth(raw)
    if refusal is not None:
        raise ValidationFailedError({"file": [refusal]})
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailedError({"file": [f"not valid JSON: {exc}"]}) from None
    stored = await run_in_threadpool(analyses_service.store_settings, ctx, pk, data)
    return related_file_body(stored)


# -- chunking configuration of one analysis ---------------------------------------------
def _effective_chunking(ctx: ApiContext, item: Analysis) -> ChunkingConfig:
    if item.chunking_configuration is not None:
        return parse_config(ChunkingConfig, item.chunking_configuration)
    try:
        return ctx.registry.get(item.model_id).chunking
    except ModelNotFoundError:
        return ChunkingConfig()


@router.get("/{pk}/chunking_configuration/")
def get_chunking(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    """The analysis's own chunking configuration, else its model's."""
    with ctx.session() as session:
        return _effective_chunking(ctx, get_analysis(session, pk)).to_json_dict()


@router.post("/{pk}/chunking_configuration/")
def post_chunking(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        try:
            new = update_config(_effective_chunking(ctx, item), body_dict(body))
        except ConfigError as exc:
            raise ValidationFailedError(exc.fields) from None
        item.chunking_configuration = new.to_json_dict()
        session.commit()
        return new.to_json_dict()


# -- actions (the task controller decides and dispatches) -------------------------------
def _action(name: str) -> Any:
    def endpoint(
        pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
    ) -> dict[str, Any]:
        with ctx.session() as session:
            get_analysis(session, pk)
        actions.perform(ctx, name, pk, options=dict(request.query_params))
        return _detail(ctx, pk, request)

    return endpoint


for _name in actions.ACTIONS:
    router.add_api_route(f"/{{pk}}/{_name}/", _action(_name), methods=["POST"], name=_name)


@router.get("/{pk}/sub_task_list/")
def sub_task_list(
    pk: int,
    request: Request,
    subtask_status: str | None = None,
    subtask_slug: str | None = None,
    ctx: ApiContext = _Ctx,
) -> list[dict[str, Any]]:
    """Sub-tasks of the analysis's latest generate or run request."""
    with ctx.session() as session:
        item = get_analysis(session, pk)
        tasks = analyses_service.current_sub_tasks(session, item)
    if subtask_status is not None:
        tasks = [t for t in tasks if t.status == subtask_status.upper()]
    if subtask_slug is not None:
        tasks = [t for t in tasks if subtask_slug.lower() in t.slug.lower()]
    return [sub_task_body(t, base=base_url(request)) for t in tasks]


@router.get("/{pk}/storage_links/")
def storage_links(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        out: dict[str, Any] = {}
        for field in ANALYSIS_FILE_FIELDS:
            file_id = getattr(item, f"{field}_id")
            stored = session.get(StoredFile, file_id) if file_id else None
            out[field] = stored_name(stored) if stored else None
        return out


# -- files ------------------------------------------------------------------------------
def _stored(ctx: ApiContext, pk: int, field: str) -> StoredFile | None:
    with ctx.session() as session:
        item = get_analysis(session, pk)
        file_id = getattr(item, f"{field}_id")
        return session.get(StoredFile, file_id) if file_id else None


def _file_route(field: str) -> None:
    content_type, name = ANALYSIS_FILE_FIELDS[field]

    def download(pk: int, ctx: ApiContext = _Ctx) -> Response:
        return serve(
            ctx, _stored(ctx, pk, field), content_type=content_type, filename=name.format(id=pk)
        )

    router.add_api_route(f"/{{pk}}/{field}/", download, methods=["GET"], name=f"get_{field}")


for _field in ANALYSIS_FILE_FIELDS:
    _file_route(_field)


def _tar_members(ctx: ApiContext, pk: int, field: str) -> dict[str, Callable[[], bytes]]:
    """The archive's files by name, each with a reader of its bytes: the files of a stored
    directory (the archive made of it when downloaded), or the members of a stored tar."""
    stored = _stored(ctx, pk, field)
    if stored is None:
        raise NotFoundError()
    path = ctx.storage.abspath(stored.path)
    if path.is_dir():
        return {
            str(p.relative_to(path)): p.read_bytes for p in archives.members(path) if p.is_file()
        }
    try:
        with tarfile.open(path) as tar:
            found = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
    except (OSError, tarfile.TarError):
        raise NotFoundError("The file is missing or is not a tar archive.") from None

    def reader(member: tarfile.TarInfo) -> Callable[[], bytes]:
        def read() -> bytes:
            with tarfile.open(path) as tar:
                fh = tar.extractfile(member)
                if fh is None:
                    raise NotFoundError(f"{member.name} is not in the {field}.")
                return fh.read()

        return read

    return {name: reader(member) for name, member in found.items()}


def _tar_routes(field: str) -> None:
    def tar_list(pk: int, ctx: ApiContext = _Ctx) -> list[str]:
        return list(_tar_members(ctx, pk, field))

    def tar_extract(pk: int, filename: str | None = None, ctx: ApiContext = _Ctx) -> Response:
        if not filename:
            raise ValidationFailedError({"filename": ["This query parameter is required."]})
        read = _tar_members(ctx, pk, field).get(filename.removeprefix("./"))
        if read is None:
            raise NotFoundError(f"{filename} is not in the {field}.")
        data = read()
        short = filename.rsplit("/", 1)[-1]
        ctype = "text/csv" if short.endswith(".csv") else "application/octet-stream"
        return text_response(data, content_type=ctype, filename=short)

    router.add_api_route(f"/{{pk}}/{field}_tar_list/", tar_list, methods=["GET"])
    router.add_api_route(f"/{{pk}}/{field}_tar_extract/", tar_extract, methods=["GET"])


for _field in ("input_file", "output_file"):
    _tar_routes(_field)
