"""``oasis-keda analyses`` against a real Redis and records DB (click's runner, in-process).

Covers: create prints an id and copies the files into storage; unknown model, missing file
and bad status are refused with a message and a non-zero exit; DYNAMIC loss chunking without
``number_of_events`` is refused when the run is requested, before anything is queued (status,
run number, controller queue and main tasks unchanged); show/subtasks --json shapes; logs of
an unknown sub-task; a whole generate --wait / run --wait / outputs on the synthetic model
with real controller and worker processes (when the oasislmf stages are installed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from oasis_keda.cli import cli
from oasis_keda.core import keys
from oasis_keda.core.registry import Registry
from oasis_keda.core.store import Analysis, StoredFile
from oasis_keda.runtime.synth import write_synthetic_model
from tests.stack_support import Stack, running_stack


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        yield stack


def invoke(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(cli, ["analyses", *args], env=stack.env, catch_exceptions=False)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    write_synthetic_model(tmp_path / "model", locations=6, events=12, seed=1)
    return tmp_path / "model"


def _register(client: redis.Redis, model_id: str, model_dir: Path) -> None:
    Registry(client).register(model_id, model_dir=str(model_dir))


def test_create_show_subtasks(stack: Stack, model_dir: Path, redis_client: redis.Redis) -> None:
    _register(redis_client, "synth", model_dir)
    result = invoke(
        stack,
        "create",
        "first",
        "--model",
        "synth",
        "--locations",
        str(model_dir / "location.csv"),
        "--settings",
        str(model_dir / "analysis_settings.json"),
        "--priority",
        "7",
    )
    assert result.exit_code == 0, result.output
    analysis_id = int(result.stdout.strip())
    shown = json.loads(invoke(stack, "show", str(analysis_id), "--json").stdout)
    assert shown["status"] == "NEW"
    assert shown["priority"] == 7
    assert shown["status_count"]["TOTAL"] == 0
    assert json.loads(invoke(stack, "subtasks", str(analysis_id), "--json").stdout) == []
    with stack.controller.sessions() as session:
        analysis = session.get(Analysis, analysis_id)
        assert analysis is not None
        stored = session.get(StoredFile, analysis.portfolio.location_file_id)
        assert stored is not None
        copy = stack.controller.storage.abspath(stored.path)
    assert copy.read_bytes() == (model_dir / "location.csv").read_bytes()
    assert copy.parent.parent.name == "uploads"


def test_refusals_exit_non_zero_with_a_message(
    stack: Stack, model_dir: Path, redis_client: redis.Redis
) -> None:
    result = invoke(
        stack, "create", "x", "--model", "nope", "--locations", str(model_dir / "location.csv")
    )
    assert result.exit_code != 0
    assert "model 'nope' is not registered" in result.output
    _register(redis_client, "synth", model_dir)
    result = invoke(stack, "create", "x", "--model", "synth", "--locations", "/no/such.csv")
    assert result.exit_code != 0
    assert "/no/such.csv" in result.output
    bad_settings = model_dir / "bad_settings.json"
    bad_settings.write_text(json.dumps({"gul_output": "yes please"}))
    result = invoke(
        stack,
        *("create", "x", "--model", "synth", "--locations", str(model_dir / "location.csv")),
        *("--settings", str(bad_settings)),
    )
    assert result.exit_code != 0
    assert "bad_settings.json is not valid analysis settings" in result.output
    assert "gul_output" in result.output
    analysis_id = invoke(
        stack, "create", "x", "--model", "synth", "--locations", str(model_dir / "location.csv")
    ).stdout.strip()
    result = invoke(stack, "run", analysis_id)
    assert result.exit_code != 0
    assert "Analysis status must be one of" in result.output
    result = invoke(stack, "cancel", analysis_id)
    assert result.exit_code != 0
    result = invoke(stack, "logs", "999")
    assert result.exit_code != 0
    assert "sub-task 999 does not exist" in result.output


def test_dynamic_loss_without_number_of_events_is_refused_before_queueing(
    stack: Stack, model_dir: Path, redis_client: redis.Redis
) -> None:
    settings_path = model_dir / "meta-data" / "model_settings.json"
    model_settings = json.loads(settings_path.read_text())
    del model_settings["model_settings"]["event_set"]["options"][0]["number_of_events"]
    settings_path.write_text(json.dumps(model_settings))
    _register(redis_client, "synth", model_dir)
    Registry(redis_client).set_chunking("synth", {"loss_strategy": "DYNAMIC_CHUNKS"})
    analysis_id = int(
        invoke(
            stack,
            "create",
            "x",
            "--model",
            "synth",
            "--locations",
            str(model_dir / "location.csv"),
            "--settings",
            str(model_dir / "analysis_settings.json"),
        ).stdout.strip()
    )
    # Precondition of a run: inputs exist (as after a generate).
    with stack.controller.sessions.begin() as session:
        analysis = session.get(Analysis, analysis_id)
        assert analysis is not None
        inputs = StoredFile(
            path="x/inputs.tar.gz", filename="inputs.tar.gz", content_type="application/gzip"
        )
        session.add(inputs)
        session.flush()
        analysis.input_file_id = inputs.id
        analysis.status = "READY"
        analysis.run_number = 1

    result = invoke(stack, "run", str(analysis_id))
    assert result.exit_code != 0
    assert "number_of_events" in result.output
    assert "loss_strategy" in result.output
    analysis = stack.analysis(analysis_id)
    assert analysis.status == "READY"
    assert analysis.run_number == 1
    assert all(redis_client.llen(q) == 0 for q in keys.queue_lists(keys.CONTROLLER_QUEUE))
    assert not redis_client.exists(keys.main_tasks("synth"))
    assert stack.subtasks(analysis_id) == []

    # FIXED chunking needs no event count. IL outputs need the accounts file: as in
    # oasislmf, the run goes ahead without them, with a warning naming what is missing.
    Registry(redis_client).set_chunking("synth", {"loss_strategy": "FIXED_CHUNKS"})
    result = invoke(stack, "run", str(analysis_id))
    assert result.exit_code == 0, result.output
    warning = "IL losses (il_output) are dropped: the portfolio has no accounts file"
    assert warning in result.output
    assert stack.analysis(analysis_id).warnings == [warning]
    shown = invoke(stack, "show", str(analysis_id))
    assert f"warning              {warning}" in shown.output, shown.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_generate_run_outputs_with_wait(
    stack: Stack, model_dir: Path, redis_client: redis.Redis, tmp_path: Path
) -> None:
    pytest.importorskip("worker.lookup")
    pytest.importorskip("worker.losses")
    _register(redis_client, "synth", model_dir)
    Registry(redis_client).set_chunking(
        "synth", {"fixed_lookup_chunks": 3, "fixed_analysis_chunks": 2}
    )
    stack.start_controller()
    stack.start_worker("synth")
    analysis_id = invoke(
        stack,
        "create",
        "x",
        "--model",
        "synth",
        "--locations",
        str(model_dir / "location.csv"),
        "--accounts",
        str(model_dir / "account.csv"),
        "--settings",
        str(model_dir / "analysis_settings.json"),
    ).stdout.strip()
    result = invoke(stack, "generate", analysis_id, "--wait", "--timeout", "240")
    assert result.exit_code == 0, result.output + stack.log("worker")[-3000:]
    assert "READY" in result.output
    result = invoke(stack, "run", analysis_id, "--wait", "--timeout", "240")
    assert result.exit_code == 0, result.output + stack.log("worker")[-3000:]
    assert "RUN_COMPLETED" in result.output
    out = tmp_path / "out"
    result = invoke(stack, "outputs", analysis_id, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert any(out.rglob("*.csv"))
    subs = json.loads(invoke(stack, "subtasks", analysis_id, "--json").stdout)
    assert [s["slug"] for s in subs] == [
        "prepare-losses-generation-directory",
        "generate-losses-chunk-1",
        "generate-losses-chunk-2",
        "generate-losses-output",
        "cleanup-losses-generation",
    ]


@pytest.mark.timeout(900)
def test_generate_wait_exit_codes(
    stack: Stack, model_dir: Path, redis_client: redis.Redis, tmp_path: Path
) -> None:
    pytest.importorskip("worker.lookup")
    _register(redis_client, "synth", model_dir)
    Registry(redis_client).set_chunking("synth", {"fixed_lookup_chunks": 2})
    stack.start_controller()
    stack.start_worker("synth")
    good = invoke(
        stack,
        "create",
        "good",
        "--model",
        "synth",
        "--locations",
        str(model_dir / "location.csv"),
    ).stdout.strip()
    result = invoke(stack, "generate", good, "--wait", "--timeout", "600")
    assert result.exit_code == 0, result.output + stack.log("worker")[-3000:]
    assert f"analysis {good}: READY" in result.output

    bad_file = tmp_path / "bad.csv"
    bad_file.write_text("PortNumber,AccNumber\n1,1\n")  # no LocNumber, ...: refused at once
    refused = invoke(stack, "create", "bad", "--model", "synth", "--locations", str(bad_file))
    assert refused.exit_code != 0
    assert "missing required OED column(s): LocNumber, CountryCode" in refused.output
    bad_file.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude\n"
        "1,1,1,GB,WTC,GBP,north\n"  # a latitude that is no number: found at generation
    )
    bad = invoke(
        stack, "create", "bad", "--model", "synth", "--locations", str(bad_file)
    ).stdout.strip()
    result = invoke(stack, "generate", bad, "--wait", "--timeout", "600")
    assert result.exit_code == 1, result.output
    assert "INPUTS_GENERATION_ERROR" in result.output
    assert "failed:" in result.output  # the failed sub-task's error log is printed
    assert "bad.csv" in result.output
