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
#: The answer to a client_id/client_secret login. The official CLI tries one after the
#: default user and moves on to asking for credentials only on a 401, or on a 400 whose
#: message says the flow is disabled.
MSG_CLIENT_FLOW = (
    "The client_id/client_secret login flow is disabled on this server "
    "(API_AUTH_TYPE simple): log in with username and password."
)


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
    """Log in with ``{"username", "password"}``; answer an access and a refresh token. A
    ``client_id``/``client_secret`` login is answered 400, "flow is disabled"."""
    body = body or {}
    if not body.get("username") and ("client_id" in body or "client_secret" in body):
        raise ValidationFailedError({"client_id": [MSG_CLIENT_FLOW]})
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
