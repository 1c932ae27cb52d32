"""Errors raised by the oasislmf stages of a worker.

The split matters to the task layer: an :class:`InputError` is deterministic (the same input
fails the same way on every machine), so the task fails at once with its message; a
:class:`TransientError` (a lost file on a shared volume, a killed pipeline process) is
worth a bounded retry.
"""

from __future__ import annotations

from oasis_keda.core.errors import OasisKedaError


class WorkerError(OasisKedaError):
    """Base of the worker's own errors."""


class InputError(WorkerError):
    """Bad input: the message names the file and, where known, the row or column."""


class TransientError(WorkerError):
    """A failure that may pass on a retry."""
