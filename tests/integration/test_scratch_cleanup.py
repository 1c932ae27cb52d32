"""The janitor removes the temporary directory of a dead worker, and only that (real
Redis, real processes and directories).

Covers: a directory named after a worker whose process is gone and whose leases have
expired is removed; kept are the directory of a live process (even idle, with no lease),
of a dead process whose lease is still live, of another host, and one whose name names
no worker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import redis

from oasis_keda.core.leases import LeaseKeeper
from task_controller.scratch_cleanup import remove_dead_scratch, scratch_dir

HOST = socket.gethostname()
QUEUE = "oasis-keda.model.scratch"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_dead_workers_directories_are_removed(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    dead = scratch_dir(f"m.{_dead_pid()}@{HOST}", tmp_path)
    alive = scratch_dir(f"m.{os.getpid()}@{HOST}", tmp_path)
    leased_node = f"m.{_dead_pid()}@{HOST}"
    leased = scratch_dir(leased_node, tmp_path)
    elsewhere = scratch_dir(f"m.{_dead_pid()}@not-{HOST}", tmp_path)
    unknown = tmp_path / "oasis-keda-worker-something"
    for path in (dead, alive, leased, elsewhere, unknown):
        path.mkdir()
        (path / "chunk.bin").write_bytes(b"x" * 1024)
    keeper = LeaseKeeper(redis_client, queue=QUEUE, node=leased_node, ttl_s=30)
    keeper.task_started("t1")  # a lease still live: its holder may only be slow
    try:
        removed = remove_dead_scratch(redis_client, [QUEUE], tmp_root=tmp_path)
    finally:
        keeper.stop()
    assert removed == [dead]
    assert not dead.exists()
    assert all(p.exists() for p in (alive, leased, elsewhere, unknown))
    # once its lease is gone, the dead holder's directory goes too
    assert remove_dead_scratch(redis_client, [QUEUE], tmp_root=tmp_path) == [leased]
