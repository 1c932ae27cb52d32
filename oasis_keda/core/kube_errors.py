"""Errors of the Kubernetes adapters.

The worker never sees these (``PodDeletionCost`` swallows them); the kubectl plugin turns
them into one clear line for the operator.
"""

from __future__ import annotations

from oasis_keda.core.errors import OasisKedaError


class KubeError(OasisKedaError):
    """Base of the Kubernetes adapter errors."""


class KubeConfigError(KubeError):
    """No usable cluster configuration (no in-cluster account, bad or missing kubeconfig)."""


class KubeApiError(KubeError):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"Kubernetes API error {status} {reason}: {message}")
