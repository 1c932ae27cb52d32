"""Each worker process's own temporary folder, removed when the process ends.

oasislmf and the lookup write scratch files under the temporary directory (FIFO folders,
the key server's output folder, staging copies). A worker points ``TMPDIR`` and
``OASIS_TMPDIR`` at ``<tmp>/oasis-keda-worker-<node>`` before anything else runs, so
everything it leaves behind is in one folder named after it: removed at a clean exit, and
by whoever notices its end after a crash (the local runtime, when it reaps the process).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "oasis-keda-worker-"


def node_name(model_id: str, pid: int, host: str) -> str:
    """A worker process's Celery node name (also its leases' member name)."""
    return f"{model_id}.{pid}@{host}".replace("|", "_")


def folder_for(node: str, base: Path | None = None) -> Path:
    """Where the worker ``node`` keeps its temporary files."""
    return Path(base or tempfile.gettempdir()) / folder_name(node)


def folder_name(node: str) -> str:
    """The temporary folder's name for a worker node (file-name safe)."""
    return PREFIX + re.sub(r"[^A-Za-z0-9._@-]", "_", node)


def claim(node: str, base: Path | None = None) -> Path:
    """Create this process's temporary folder and make it the process's temp directory."""
    root = folder_for(node, base)
    root.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(root)
    os.environ["OASIS_TMPDIR"] = str(root)
    tempfile.tempdir = str(root)
    return root


def release(root: Path) -> None:
    """Remove the folder (never raises: the process is ending)."""
    shutil.rmtree(root, ignore_errors=True)
    if root.exists():
        logger.warning("temporary folder %s could not be removed", root)


def remove_fifo_folder(fifo_queue_dir: str | None) -> None:
    """Remove the ``<tmp>/<random>/fifo/`` folder oasislmf makes for one loss chunk.

    oasislmf's chunk scripts create it and, unlike its single-process script, never remove
    it. Only a folder inside the temporary directory is touched.
    """
    if not fifo_queue_dir:
        return
    fifo = Path(fifo_queue_dir.rstrip("/"))
    owner = fifo.parent
    tmp = Path(os.environ.get("OASIS_TMPDIR") or tempfile.gettempdir()).resolve()
    if fifo.name != "fifo" or owner.resolve().parent != tmp:
        return
    shutil.rmtree(owner, ignore_errors=True)
