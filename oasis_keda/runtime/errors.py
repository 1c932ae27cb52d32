"""Errors of the local runtime."""

from __future__ import annotations

from oasis_keda.core.errors import OasisKedaError


class LocalRuntimeError(OasisKedaError):
    """Base of the local runtime's errors."""


class ScaledObjectError(LocalRuntimeError):
    """A ScaledObject field the autoscaler reads is missing or invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"ScaledObject {field}: {message}")


class ProcessStartError(LocalRuntimeError):
    """A process of the local stack did not start or did not become ready."""


class PartFailedError(LocalRuntimeError):
    """A part of the local stack kept exiting: it was restarted as often as allowed."""
