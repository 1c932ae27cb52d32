"""Removing the temporary directory a dead worker left behind.

Each worker process works in a directory of its own, ``<tmp>/oasis-keda-worker-<node>``
(:func:`scratch_dir`; ``<node>`` is its lease name, ``<model>.<pid>@<host>``). A worker
stopped cleanly removes it; one killed leaves it behind, which at PiWind size is over a
gigabyte. At each janitor pass, :func:`remove_dead_scratch` removes every such directory
on this host whose worker holds no live lease in any queue (every worker process keeps a
live lease, busy or idle) and whose process is gone. A directory it
cannot attribute to a worker of this host is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import redis

from oasis_keda.core import keys
from worker.scratch import PREFIX, folder_for

logger = logging.getLogger(__name__)

_NODE = re.compile(r"^.+\.(?P<pid>\d+)@(?P<host>.+)$")


def scratch_dir(node: str, tmp_root: Path | None = None) -> Path:
    """The temporary directory of the worker process named ``node``."""
    return folder_for(node, tmp_root)


def _live_nodes(client: redis.Redis, queues: Iterable[str]) -> set[str]:
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    nodes: set[str] = set()
    for queue in queues:
        for key in (keys.leases_tasks(queue), keys.leases_busy(queue), keys.leases_live(queue)):
            members = cast(list[bytes], client.zrangebyscore(key, now_ms, "+inf"))
            nodes.update(m.decode().split("|", 1)[0] for m in members)
    return nodes


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def remove_dead_scratch(
    client: redis.Redis, queues: Iterable[str], *, tmp_root: Path | None = None
) -> list[Path]:
    """Remove the directories of dead workers of this host; returns those removed."""
    root = Path(tmp_root or tempfile.gettempdir())
    found = {p.name.removeprefix(PREFIX): p for p in root.glob(f"{PREFIX}*") if p.is_dir()}
    if not found:
        return []
    host = socket.gethostname()
    live = _live_nodes(client, queues)
    removed = []
    for node, path in sorted(found.items()):
        match = _NODE.match(node)
        if match is None or match["host"] != host or node in live:
            continue
        if not _process_gone(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(path)
            removed.append(path)
            logger.warning("removed %s: its worker %s is gone", path, node)
    return removed
