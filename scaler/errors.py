"""Errors of the scaler. Only :mod:`scaler.service` turns them into gRPC status codes."""

from __future__ import annotations

from oasis_keda.core.errors import BrokerUnavailableError, ModelNotFoundError, OasisKedaError

__all__ = [
    "BrokerUnavailableError",
    "MetadataError",
    "ModelNotFoundError",
    "RegistryNotLoadedError",
    "ScalerError",
    "StoredConfigError",
]


class ScalerError(OasisKedaError):
    """Base of the scaler's own errors."""


class MetadataError(ScalerError):
    """The ScaledObject's ``scalerMetadata`` is missing a key or has a bad value."""


class StoredConfigError(ScalerError):
    """A model's stored record cannot be read (written by something other than the registry)."""


class RegistryNotLoadedError(ScalerError):
    """A model is missing from a registry cache that Redis lost and the controller has not
    rebuilt yet: unknown, not unregistered (answered UNAVAILABLE, never NOT_FOUND or 0)."""
