"""``/v2/data_files/``: complex model data files, which the project does not support. The
list is empty, so that the official client and the Oasis UI read it as they would an
empty platform; creating one is refused, naming why."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from oasis_keda.api.context import require_user
from oasis_keda.api.errors import NotFoundError, ValidationFailedError

router = APIRouter(
    prefix="/v2/data_files", tags=["data files"], dependencies=[Depends(require_user)]
)
NOT_SUPPORTED = "Complex model data files are not supported."


@router.get("/")
def list_data_files() -> list[dict[str, Any]]:
    return []


@router.post("/", status_code=201)
def create_data_file(body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:  # noqa: B008
    raise ValidationFailedError({"file": [NOT_SUPPORTED]})


@router.get("/{pk}/")
def get_data_file(pk: int) -> dict[str, Any]:
    raise NotFoundError()
