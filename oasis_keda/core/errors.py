"""Errors of the shared core."""

from __future__ import annotations

from collections.abc import Mapping


class OasisKedaError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(OasisKedaError):
    """A configuration was refused. ``fields`` maps each bad field to its message."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.fields.items()))


class ModelNotFoundError(OasisKedaError):
    """No model is registered under this id."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        super().__init__(f"model {model_id!r} is not registered")


class BrokerUnavailableError(OasisKedaError):
    """Redis could not be reached or answered with an error."""
