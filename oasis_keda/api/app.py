"""The FastAPI application: the Oasis v2 API subset the official oasislmf client uses.

:func:`create_app` wires the routers to one :class:`~oasis_keda.api.context.ApiContext`
and installs the exception handlers that give every error its DRF-style body. The OpenAPI
document is served at ``/v2/schema/`` as upstream does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oasis_keda import __version__ as VERSION
from oasis_keda.api import (
    routes_analyses,
    routes_auth,
    routes_data_files,
    routes_models,
    routes_portfolios,
    routes_tasks,
)
from oasis_keda.api.context import ApiContext
from oasis_keda.api.errors import ApiError
from oasis_keda.api.json_depth import JsonDepthLimit
from oasis_keda.api.metrics import RequestMetrics
from oasis_keda.api.settings import ApiSettings

logger = logging.getLogger(__name__)

SCHEMA_URL = "/v2/schema/"


def create_app(settings: ApiSettings, *, ctx: ApiContext | None = None) -> FastAPI:
    """An app over ``settings`` (or over a ready ``ctx``, closed when the app stops)."""
    context = ctx or ApiContext.create(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            context.close()

    app = FastAPI(
        title="oasis-keda API",
        version=VERSION,
        description="Oasis platform v2 API subset, served over oasis-keda's controller.",
        openapi_url=SCHEMA_URL,
        docs_url="/v2/docs/",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.add_middleware(JsonDepthLimit)
    app.add_middleware(RequestMetrics)
    _install_error_handlers(app)
    app.include_router(routes_auth.router)
    app.include_router(routes_models.router)
    app.include_router(routes_portfolios.router)
    app.include_router(routes_analyses.router)
    app.include_router(routes_tasks.router)
    app.include_router(routes_data_files.router)
    return app


def _validation_body(exc: RequestValidationError) -> dict[str, Any]:
    body: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        if err.get("type") == "json_invalid":
            return {"detail": f"JSON parse error - {err.get('msg', 'invalid JSON')}"}
        field = loc[0] if loc else "non_field_errors"
        body.setdefault(field, []).append(str(err.get("msg", "Invalid value.")))
    return body


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": 'Bearer realm="api"'} if exc.status_code == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(_validation_body(exc), status_code=400)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = "Not found." if exc.status_code == 404 else exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
