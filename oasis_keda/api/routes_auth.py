"""Unauthenticated endpoints: health, server info (auth type), login and token refresh.

``/server_info/`` must answer 200 without credentials and name the auth type ``simple``:
the official client picks its login flow from it and fails to connect otherwise
(docs/API.md, "What the official client relies on").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request

from oasis_keda import __version__
from oasis_keda.api.auth import bearer_token
from oasis_keda.api.context import ApiContext, get_ctx
from oasis_keda.api.errors import ValidationFailedError

router = APIRouter(tags=["auth"])

REQUIRED = "This field is required."


@router.get("/healthcheck/")
def healthcheck() -> dict[str, str]:
    return {"status": "OK"}


@router.get("/server_info/")
def server_info() -> dict[str, Any]:
    return {
        "version": __version__,
        "config": {"API_AUTH_TYPE": "simple", "DEFAULT_MODEL_RUN_MODE": "V2"},
    }


@router.post("/access_token/")
def access_token(
    body: dict[str, Any] | None = Body(default=None),  # noqa: B008
    ctx: ApiContext = Depends(get_ctx),  # noqa: B008
) -> dict[str, Any]:
    """Log in with ``{"username", "password"}``; answer an access and a refresh token."""
    body = body or {}
    missing = {f: [REQUIRED] for f in ("username", "password") if not body.get(f)}
    if missing:
        raise ValidationFailedError(missing)
    return ctx.auth.login(body["username"], body["password"]).body()


@router.post("/refresh_token/")
def refresh_token(
    request: Request,
    body: dict[str, Any] | None = Body(default=None),  # noqa: B008
    ctx: ApiContext = Depends(get_ctx),  # noqa: B008
) -> dict[str, Any]:
    """New tokens for the refresh token sent as the bearer (or as ``refresh_token``)."""
    token = (body or {}).get("refresh_token") or (body or {}).get("refresh")
    if not isinstance(token, str) or not token:
        token = bearer_token(request.headers.get("authorization"))
    return ctx.auth.refresh(token).body()
