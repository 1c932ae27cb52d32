"""Errors of the HTTP API, and their DRF-style bodies.

Route code raises these; one set of exception handlers in :mod:`oasis_keda.api.app` turns
them into the bodies the Oasis platform sends (``{field: [msg]}`` with 400,
``{"detail": msg}`` with 401/404), so no route builds an error response by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oasis_keda.core.errors import OasisKedaError


class ApiConfigError(OasisKedaError):
    """The API settings are unusable (bad value, refused default login)."""


class ApiError(OasisKedaError):
    """An error answered to the HTTP client."""

    status_code = 400

    def body(self) -> Any:
        return {"detail": str(self)}


class ValidationFailedError(ApiError):
    """A request was refused; ``fields`` maps each field to its message(s)."""

    status_code = 400

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.fields.items()))

    def body(self) -> Any:
        return self.fields


class NotFoundError(ApiError):
    status_code = 404

    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(detail)


class AuthError(ApiError):
    status_code = 401


class PayloadTooLargeError(ApiError):
    status_code = 413


class ServiceUnavailableError(ApiError):
    status_code = 503


class UnsupportedMediaTypeError(ApiError):
    status_code = 415
