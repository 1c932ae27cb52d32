"""Errors of the task controller. The CLI prints them; the REST API maps them to HTTP codes
(:class:`RequestError` and :class:`StatusError` -> 400, :class:`AnalysisNotFoundError` -> 404).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from oasis_keda.core.errors import OasisKedaError


class ControllerError(OasisKedaError):
    """Base of the controller's errors."""


class RequestError(ControllerError):
    """A request was refused before anything was queued; ``fields`` maps field -> message."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.fields.items()))


class StatusError(RequestError):
    """The analysis is not in a status that allows the request (Oasis's 400 on ``status``)."""

    def __init__(self, status: str, allowed: Iterable[str]) -> None:
        self.allowed = sorted(allowed)
        super().__init__(
            {"status": f"Analysis status must be one of [{', '.join(self.allowed)}], not {status}"}
        )


class AnalysisNotFoundError(ControllerError):
    def __init__(self, analysis_id: int) -> None:
        self.analysis_id = analysis_id
        super().__init__(f"analysis {analysis_id} does not exist")


class SubTaskNotFoundError(ControllerError):
    def __init__(self, subtask_id: int) -> None:
        self.subtask_id = subtask_id
        super().__init__(f"sub-task {subtask_id} does not exist")
