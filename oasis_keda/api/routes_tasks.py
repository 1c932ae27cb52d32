"""``/v2/analysis-task-statuses/``: sub-task records and their logs.

Records of earlier runs stay readable here by id even though an analysis's
``sub_task_list/`` shows only its latest run (as upstream, which deletes the old ones).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from oasis_keda.api.context import ApiContext, base_url, check_id, get_ctx, require_user
from oasis_keda.api.errors import NotFoundError
from oasis_keda.api.files import text_response
from oasis_keda.api.serializers import SUB_TASK_LOG_FIELDS, sub_task_body
from oasis_keda.core.store import SubTask

router = APIRouter(
    prefix="/v2/analysis-task-statuses",
    tags=["analysis-task-statuses"],
    dependencies=[Depends(require_user)],
)

_Ctx = Depends(get_ctx)


def _get(ctx: ApiContext, pk: int) -> SubTask:
    with ctx.session() as session:
        item = session.get(SubTask, check_id(pk))
        if item is None:
            raise NotFoundError()
        return item


@router.get("/")
def list_sub_tasks(
    request: Request,
    analysis: int | None = None,
    status: str | None = None,
    slug: str | None = None,
    ctx: ApiContext = _Ctx,
) -> list[dict[str, Any]]:
    query = select(SubTask).order_by(SubTask.id)
    if analysis is not None:
        query = query.where(SubTask.analysis_id == check_id(analysis))
    if status is not None:
        query = query.where(SubTask.status == status.upper())
    if slug is not None:
        query = query.where(SubTask.slug.icontains(slug, autoescape=True))
    with ctx.session() as session:
        return [sub_task_body(t, base=base_url(request)) for t in session.scalars(query).all()]


@router.get("/{pk}/")
def get_sub_task(pk: int, request: Request, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    return sub_task_body(_get(ctx, pk), base=base_url(request))


def _log_routes(field: str) -> None:
    suffix = field.removesuffix("_log")

    def download(pk: int, ctx: ApiContext = _Ctx) -> Response:
        item = _get(ctx, pk)
        text = getattr(item, field)
        if text is None:
            raise NotFoundError()
        name = f"{item.task_id or item.id}-{suffix}.log"
        return text_response(text, content_type="text/plain", filename=name)

    def delete(pk: int, ctx: ApiContext = _Ctx) -> Response:
        with ctx.session() as session:
            item = session.get(SubTask, check_id(pk))
            if item is None or getattr(item, field) is None:
                raise NotFoundError()
            setattr(item, field, None)
            session.commit()
        return Response(status_code=200)

    router.add_api_route(f"/{{pk}}/{field}/", download, methods=["GET"], name=f"get_{field}")
    router.add_api_route(f"/{{pk}}/{field}/", delete, methods=["DELETE"], name=f"delete_{field}")


for _field in SUB_TASK_LOG_FIELDS:
    _log_routes(_field)
