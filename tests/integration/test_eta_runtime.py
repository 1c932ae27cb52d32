"""The ETA of a running stage through real controller and worker processes (the test hooks'
trivial stage, whose chunks sleep): ``analyses show`` and ``status`` show it while the stage
runs, completed sub-tasks leave estimates (at most one a second per stage), and the stage's end settles them against
the time that was really left (the outcome ``make bench`` reports)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core import eta_log, keys
from oasis_keda.core.registry import Registry
from tests.stack_support import Stack, running_stack, wait_for

MODEL = "noop-model"


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL)
        yield stack


def _analysis(stack: Stack, tmp_path: Path) -> int:
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
        "1,A1,1,GB,WTC,GBP,52.1,-0.2\n"
    )
    return stack.controller.create_analysis("a", model_id=MODEL, location_file=locations)


def test_eta_is_shown_while_a_stage_runs_and_settled_when_it_ends(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack.start_controller()
    stack.start_worker(MODEL)
    analysis_id = _analysis(stack, tmp_path)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 4, "noop_sleep_s": 1.5})
    runner = CliRunner()

    def shown() -> dict | None:
        out = runner.invoke(cli, ["analyses", "show", str(analysis_id), "--json"], env=stack.env)
        return json.loads(out.stdout)["eta"]

    # known once a chunk has completed: this run's chunks are the basis
    wait_for(lambda: shown() is not None, 60, "an ETA")
    first = shown()
    assert first is not None and first["stage"] == "noop"
    assert first["workers"] == 1 and first["stage_remaining_s"] > 0
    assert "this run" in first["basis"]
    text = runner.invoke(cli, ["analyses", "show", str(analysis_id)], env=stack.env).stdout
    assert "eta " in text and "s left" in text
    status = runner.invoke(cli, ["status", "--json"], env=stack.env)
    assert status.exit_code == 0, status.output
    running = json.loads(status.stdout)["analyses"]
    assert [a["id"] for a in running] == [analysis_id]

    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    assert shown() is None  # nothing in progress
    wait_for(lambda: bool(eta_log.outcomes(redis_client)), 10, "the settled estimates")
    outcome = eta_log.outcomes(redis_client)[0]
    assert outcome["analysis_id"] == analysis_id and outcome["stage"] == "noop"
    assert outcome["estimates"] >= 3  # the chunks last 1.5 s: one per completed sub-task
    assert not redis_client.keys(f"{keys.PREFIX}:eta:{analysis_id}:*")


def test_estimates_are_due_at_most_once_a_second(redis_client: redis.Redis) -> None:
    assert eta_log.estimate_due(redis_client, 7, 1, "losses")
    assert not eta_log.estimate_due(redis_client, 7, 1, "losses")
    assert eta_log.estimate_due(redis_client, 7, 1, "inputs")  # per stage
    ttl_ms = redis_client.pttl(keys.eta_due(7, 1, "losses"))
    assert 0 < ttl_ms <= eta_log.ESTIMATE_EVERY_S * 1000
