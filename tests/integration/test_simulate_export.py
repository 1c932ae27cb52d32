"""``oasis-keda analyses export`` with the registry reachable: each model's line carries its
registered scaling configuration (a real Redis, a SQLite records database)."""

from __future__ import annotations

from pathlib import Path

import redis
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core.registry import Registry
from oasis_keda.core.store import make_engine, make_session_factory
from oasis_keda.runtime.simulate import workload as wl
from tests.simulate_support import fill


def test_export_reads_the_registered_scaling(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    registry = Registry(redis_client)
    registry.register("synth")
    registry.set_scaling(
        "synth", {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 7, "worker_count_min": 1}
    )
    database = f"sqlite:///{tmp_path / 'records.sqlite3'}"
    with make_session_factory(make_engine(database)).begin() as session:
        fill(session)
    out = tmp_path / "history.jsonl"
    result = CliRunner().invoke(
        cli,
        ["analyses", "export", "--out", str(out), "--model", "synth"],
        env={"OASIS_KEDA_DATABASE_URL": database, "OASIS_KEDA_REDIS_URL": redis_url},
    )
    assert result.exit_code == 0, result.output
    assert "scaling not in the registry" not in result.output
    work = wl.read(out)
    scaling = work.models["synth"]
    assert scaling.scaling_strategy.value == "QUEUE_LOAD"
    assert (scaling.worker_count_max, scaling.worker_count_min) == (7, 1)
    assert set(work.timings) == {"worker_start_s", "task_overhead_s", "phase_delay_s"}
