"""Keep this worker pod's ``controller.kubernetes.io/pod-deletion-cost`` current.

When the HPA lowers a Deployment's replicas, the ReplicaSet removes the pods with the
lowest deletion cost first. A worker marks its pod busy (high cost) when a task starts
and idle (low cost) when the last running task ends, so scale-in takes idle pods and
leaves running chunks alone instead of killing a pod in the middle of a chunk.

The Celery pool runs tasks in several processes of one pod, so the number of running
tasks is counted in a small file under an exclusive lock; only the 0 -> 1 and 1 -> 0
transitions patch the pod (a JSON merge patch through the official ``kubernetes`` client
and the pod's service account, see :mod:`oasis_keda.core.kube`). Outside a cluster (no
service account, no pod name) this is off, every call is a no-op and the ``kubernetes``
package is not even imported. Nothing here ever raises into the worker: an API error is
logged and the task goes on. The pod's name, namespace and service account come from
:class:`PodSettings`, read from the environment by the shared settings loader.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

from oasis_keda.core.settings import env_var, from_env

if TYPE_CHECKING:
    from oasis_keda.core.kube import KubeClient

logger = logging.getLogger(__name__)

BUSY_COST = 10000
IDLE_COST = -100
#: API call budget: a slow API server must not hold up a task for long.
PATCH_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PodSettings:
    """Where this worker runs (variables ``OASIS_KEDA_<FIELD>``, and Kubernetes' own)."""

    pod_name: str = ""
    """This pod's name (``OASIS_KEDA_POD_NAME``, from the downward API); default empty =
    not in a pod: the marker is off."""
    pod_namespace: str = ""
    """This pod's namespace (``OASIS_KEDA_POD_NAMESPACE``, downward API); default empty =
    the service account's namespace."""
    service_account_dir: Path | None = None
    """The service account mount (``OASIS_KEDA_SERVICE_ACCOUNT_DIR``); default unset = the
    standard ``/var/run/secrets/kubernetes.io/serviceaccount``. Lets a test point a worker
    process at a fake cluster."""
    kubernetes_service_host: str = dataclasses.field(
        default="", metadata=env_var("KUBERNETES_SERVICE_HOST")
    )
    """The API server's address, which Kubernetes sets in every pod
    (``KUBERNETES_SERVICE_HOST``); default empty = not in a cluster: the marker is off."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build from environment variables (the downward API's and Kubernetes' own)."""
        return from_env(cls, env)


class PodDeletionCost:
    """Busy/idle marker for one pod; safe to call from any process of the pod."""

    def __init__(
        self,
        client: KubeClient | None,
        *,
        pod_name: str = "",
        namespace: str = "",
        state_dir: Path | None = None,
        busy_cost: int = BUSY_COST,
        idle_cost: int = IDLE_COST,
    ) -> None:
        self._client = client if (client is not None and pod_name) else None
        self.pod_name = pod_name
        self.namespace = namespace or (client.namespace if client else "")
        self.busy_cost = busy_cost
        self.idle_cost = idle_cost
        directory = state_dir or Path(tempfile.gettempdir())
        self._state_file = directory / f"oasis-keda-busy-{pod_name or 'local'}.count"

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        service_account_dir: Path | None = None,
        **kwargs: object,
    ) -> PodDeletionCost:
        """In a pod: patch it through the service account. Anywhere else: off.

        The pod's name, namespace and service account come from :class:`PodSettings`;
        ``service_account_dir`` overrides its directory. Keyword arguments go to the
        constructor.
        """
        pod = PodSettings.from_env(env)
        if not pod.pod_name or not pod.kubernetes_service_host:
            logger.debug("pod deletion cost off: not in a cluster or no OASIS_KEDA_POD_NAME")
            return cls(None, **kwargs)  # type: ignore[arg-type]
        # In a pod only: the client library takes a while to import.
        from oasis_keda.core.kube import SERVICE_ACCOUNT_DIR, in_cluster
        from oasis_keda.core.kube_errors import KubeConfigError

        if service_account_dir is None:
            service_account_dir = pod.service_account_dir or SERVICE_ACCOUNT_DIR
        try:
            client = in_cluster(env, root=service_account_dir, timeout_s=PATCH_TIMEOUT_S)
        except (OSError, KubeConfigError) as exc:  # unreadable or incomplete service account
            logger.warning("pod deletion cost off: %s", exc)
            client = None
        if client is None:
            logger.debug("pod deletion cost off: no service account in %s", service_account_dir)
            return cls(None, **kwargs)  # type: ignore[arg-type]
        namespace = pod.pod_namespace or client.namespace
        return cls(
            client,
            pod_name=pod.pod_name,
            namespace=namespace,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def busy(self) -> None:
        """A task started in this pod."""
        self._step(+1)

    def idle(self) -> None:
        """A task ended in this pod (successfully or not)."""
        self._step(-1)

    def reset(self) -> None:
        """The worker (re)started: no task runs here; mark the pod idle.

        Call once from the worker's main process before the pool starts, so a count left
        by a killed pool process does not keep the pod marked busy forever.
        """
        self._step(None)

    def _step(self, delta: int | None) -> None:
        if self._client is None:
            return
        try:
            fd = os.open(self._state_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                # Patch under the lock, so patches from several pool processes keep order.
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.read(fd, 32).decode().strip()
                before = int(raw) if raw.isdigit() else 0
                after = 0 if delta is None else max(before + delta, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, str(after).encode())
                if before == 0 and after > 0:
                    self._patch(self.busy_cost)
                elif after == 0 and (before > 0 or delta is None):
                    self._patch(self.idle_cost)
            finally:
                os.close(fd)  # releases the lock
        except Exception:  # never into the worker: a missed patch only costs scale-in order
            logger.warning("could not update pod deletion cost", exc_info=True)

    def _patch(self, cost: int) -> None:
        assert self._client is not None
        # Imported here: core.kube loads the kubernetes package, which a worker outside a
        # cluster never needs (here it is loaded already: the client came from it).
        from oasis_keda.core.kube import DELETION_COST_ANNOTATION

        patch = {"metadata": {"annotations": {DELETION_COST_ANNOTATION: str(cost)}}}
        self._client.patch_pod(self.namespace, self.pod_name, patch)
        logger.info("pod %s deletion cost set to %d", self.pod_name, cost)
