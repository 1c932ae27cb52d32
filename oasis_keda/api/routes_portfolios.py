"""``/v2/portfolios/``: portfolios and their exposure files (location, accounts, RI), their
OED validation, reporting currency and currency conversion settings."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from oasis_keda.api import analyses_service, portfolio_checks
from oasis_keda.api.context import ApiContext, base_url, check_id, get_ctx, require_user
from oasis_keda.api.errors import NotFoundError, ValidationFailedError
from oasis_keda.api.files import UPLOAD_OPENAPI
from oasis_keda.api.serializers import (
    PORTFOLIO_FILE_FIELDS,
    portfolio_body,
    related_file_body,
    stored_name,
)
from oasis_keda.api.uploads import place, receive_checked, serve
from oasis_keda.api.validation import body_dict, required_str
from oasis_keda.core.store import Portfolio, StoredFile

router = APIRouter(
    prefix="/v2/portfolios", tags=["portfolios"], dependencies=[Depends(require_user)]
)

_Ctx = Depends(get_ctx)
_Body = Body(default=None)


def get_portfolio(session: Session, pk: int) -> Portfolio:
    item = session.get(Portfolio, check_id(pk))
    if item is None:
        raise NotFoundError()
    return item


def _name(body: Any) -> str:
    errors: dict[str, list[str]] = {}
    name = required_str(body_dict(body), "name", errors)
    if errors:
        raise ValidationFailedError(errors)
    return name


@router.get("/")
def list_portfolios(
    request: Request,
    name: str | None = None,
    name__contains: str | None = None,
    user: str | None = None,
    ctx: ApiContext = _Ctx,
) -> list[dict[str, Any]]:
    query = select(Portfolio).order_by(Portfolio.id)
    if name is not None:
        query = query.where(func.lower(Portfolio.name) == name.lower())
    if name__contains is not None:
        query = query.where(Portfolio.name.icontains(name__contains, autoescape=True))
    with ctx.session() as session:
        items = session.scalars(query).all()
        return [portfolio_body(p, base=base_url(request), detail=False) for p in items]


@router.post("/", status_code=201)
def create_portfolio(
    request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    name = _name(body)
    with ctx.session() as session:
        item = Portfolio(name=name)
        session.add(item)
        session.commit()
        return portfolio_body(item, base=base_url(request))


@router.get("/{pk}/")
def get_portfolio_detail(pk: int, request: Request, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        status = portfolio_checks.status_for_read(session, item)
        return portfolio_body(item, base=base_url(request), validation_status=status)


def _rename(pk: int, request: Request, body: Any, ctx: ApiContext, partial: bool) -> Any:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        if not (partial and "name" not in body_dict(body)):
            item.name = _name(body)
        session.commit()
        return portfolio_body(item, base=base_url(request))


@router.put("/{pk}/")
def update_portfolio(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    result: dict[str, Any] = _rename(pk, request, body, ctx, partial=False)
    return result


@router.patch("/{pk}/")
def patch_portfolio(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    result: dict[str, Any] = _rename(pk, request, body, ctx, partial=True)
    return result


@router.delete("/{pk}/", status_code=204)
def delete_portfolio(pk: int, ctx: ApiContext = _Ctx) -> Response:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        if analyses_service.portfolio_in_use(session, item.id):
            raise ValidationFailedError(
                {"detail": ["The portfolio is used by an analysis; delete those first."]}
            )
        session.delete(item)
        session.commit()
    return Response(status_code=204)


@router.get("/{pk}/storage_links/")
def storage_links(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        return {
            field: (stored_name(f) if (f := getattr(item, field)) is not None else None)
            for field in PORTFOLIO_FILE_FIELDS
        }


@router.post("/{pk}/create_analysis/", status_code=201)
def create_analysis(
    pk: int, request: Request, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    data = body_dict(body) | {"portfolio": check_id(pk)}
    with ctx.session() as session:
        get_portfolio(session, pk)
    return analyses_service.create(ctx, data, base=base_url(request))


# -- files ------------------------------------------------------------------------------
#: Portfolio file field -> the kind of exposure file it holds.
EXPOSURE_KINDS = {
    "location_file": "location",
    "accounts_file": "accounts",
    "reinsurance_info_file": "ri_info",
    "reinsurance_scope_file": "ri_scope",
}


def _file_routes(field: str) -> None:
    path = f"/{{pk}}/{field}/"

    def download(pk: int, file_format: str | None = None, ctx: ApiContext = _Ctx) -> Response:
        with ctx.session() as session:
            item = get_portfolio(session, pk)
            return serve(ctx, getattr(item, field), file_format=file_format)

    async def upload(pk: int, request: Request, ctx: ApiContext = _Ctx) -> dict[str, Any]:
        def exists() -> None:
            with ctx.session() as session:
                get_portfolio(session, pk)

        await run_in_threadpool(exists)
        received = await receive_checked(request, ctx)

        def record() -> dict[str, Any]:
            stored = place(ctx, received, exposure=EXPOSURE_KINDS[field])
            with ctx.session() as session:
                item = get_portfolio(session, pk)
                session.add(stored)
                session.flush()
                setattr(item, f"{field}_id", stored.id)
                session.commit()
                return related_file_body(stored)

        try:
            return await run_in_threadpool(record)
        finally:
            received.discard()  # a no-op once placed

    def delete(pk: int, ctx: ApiContext = _Ctx) -> Response:
        with ctx.session() as session:
            item = get_portfolio(session, pk)
            if getattr(item, f"{field}_id") is None:
                raise NotFoundError()
            setattr(item, f"{field}_id", None)
            session.commit()
        return Response(status_code=200)

    upload_route: Callable[..., Coroutine[Any, Any, dict[str, Any]]] = upload
    router.add_api_route(path, download, methods=["GET"], name=f"get_{field}")
    router.add_api_route(
        path, upload_route, methods=["POST"], name=f"post_{field}", openapi_extra=UPLOAD_OPENAPI
    )
    router.add_api_route(path, delete, methods=["DELETE"], name=f"delete_{field}")


for _field in PORTFOLIO_FILE_FIELDS:
    _file_routes(_field)


# -- validation and currency --------------------------------------------------------------
@router.get("/{pk}/validate/")
def get_validation(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    """Each exposure file's OED validation result (null: no file, or not validated)."""
    with ctx.session() as session:
        return dict(portfolio_checks.validated(get_portfolio(session, pk)))


@router.post("/{pk}/validate/")
def post_validation(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """Validate the exposure files (ods_tools' OED checks); errors go to ``errors_file/``."""
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        portfolio_checks.validate(ctx, session, item)
        return dict(portfolio_checks.validated(item))


@router.get("/{pk}/errors_file/")
def get_errors_file(pk: int, ctx: ApiContext = _Ctx) -> Response:
    """The last validation's errors (CSV: file, source, message)."""
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        file_id = item.validation_errors_file_id
        stored = session.get(StoredFile, file_id) if file_id else None
    return serve(ctx, stored, content_type="text/csv")


@router.get("/{pk}/reporting_currency/")
def get_reporting_currency(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        if not item.reporting_currency:
            raise NotFoundError()
        return {"reporting_currency": item.reporting_currency}


@router.post("/{pk}/reporting_currency/")
def post_reporting_currency(
    pk: int, body: dict[str, Any] | None = _Body, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """The currency the analyses of this portfolio report losses in (ISO 4217)."""
    currency = portfolio_checks.reporting_currency(body)
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        item.reporting_currency = currency
        session.commit()
        return {"reporting_currency": currency}


@router.delete("/{pk}/reporting_currency/")
def delete_reporting_currency(pk: int, ctx: ApiContext = _Ctx) -> dict[str, Any]:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        if not item.reporting_currency:
            raise NotFoundError()
        item.reporting_currency = None
        session.commit()
        return {"reporting_currency": ""}


@router.get("/{pk}/currency_conversion_json/")
def get_currency_conversion(pk: int, ctx: ApiContext = _Ctx) -> Response:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        return serve(ctx, item.currency_conversion_json, content_type="application/json")


@router.post("/{pk}/currency_conversion_json/", openapi_extra=UPLOAD_OPENAPI)
async def post_currency_conversion(
    pk: int, request: Request, ctx: ApiContext = _Ctx
) -> dict[str, Any]:
    """Currency conversion settings (ods_tools' JSON) for this portfolio's analyses."""
    await run_in_threadpool(lambda: _exists(ctx, pk))
    received = await receive_checked(request, ctx)

    def record() -> dict[str, Any]:
        portfolio_checks.check_currency_conversion(received.path.read_bytes())
        stored = place(ctx, received)
        with ctx.session() as session:
            item = get_portfolio(session, pk)
            session.add(stored)
            session.flush()
            item.currency_conversion_json_id = stored.id
            session.commit()
            return related_file_body(stored)

    try:
        return await run_in_threadpool(record)
    finally:
        received.discard()


@router.delete("/{pk}/currency_conversion_json/")
def delete_currency_conversion(pk: int, ctx: ApiContext = _Ctx) -> Response:
    with ctx.session() as session:
        item = get_portfolio(session, pk)
        if item.currency_conversion_json_id is None:
            raise NotFoundError()
        item.currency_conversion_json_id = None
        session.commit()
    return Response(status_code=200)


def _exists(ctx: ApiContext, pk: int) -> None:
    with ctx.session() as session:
        get_portfolio(session, pk)
