"""The notebook flow through the official oasislmf client, end to end with real workers.

A real API server (uvicorn, free port), the task controller and one model worker as
``oasis-keda`` subprocesses, a real Redis, the built-in synthetic model and oasislmf runs.
Covers: the model registered with the CLI found by the client's search; chunking and
scaling configured over HTTP; portfolio upload; analysis creation with settings;
``run_generate`` and ``run_analysis`` to completion under FIXED and DYNAMIC chunking;
sub-task slugs and counts equal to the controller's plan; the input files downloaded as a
tar.gz made as it is sent, listed and extracted one by one; a sub-task's output log read
back; outputs equal to the CLI's run of the same inputs; the run refusals the controller
makes (run before inputs, DYNAMIC loss chunking without ``number_of_events``); cancel
through the client, and cancel with nothing in progress refused.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import requests
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core import keys
from oasis_keda.core.model_dir import read_model_dir
from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC
from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model
from tests.integration.api_support import ApiServer, api_settings, start_server

# The workers' oasislmf stages come from another helper's modules: skip until they exist.
pytest.importorskip("worker.lookup")
pytest.importorskip("worker.losses")

#: A cold numba cache compiles the pipeline tools once (minutes); later runs take seconds.
pytestmark = pytest.mark.timeout(900)

LOCATIONS = 12
EVENTS = 20
MODEL = "synth"
STAGE_TIMEOUT_S = 240.0
POLL_S = 0.3


class Stack:
    """API server + controller + worker over one Redis, one storage dir, one database."""

    def __init__(self, redis_url: str, root: Path) -> None:
        self.redis_url = redis_url
        self.storage = root / "storage"
        self.model_dir = root / "model"
        write_synthetic_model(self.model_dir, locations=LOCATIONS, events=EVENTS, seed=7)
        self.env = os.environ | {
            "OASIS_KEDA_REDIS_URL": redis_url,
            "OASIS_KEDA_STORAGE_DIR": str(self.storage),
            "OASIS_KEDA_LOG_LEVEL": "WARNING",
        }
        self.env.pop("OASIS_KEDA_DATABASE_URL", None)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server: ApiServer | None = None

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def start(self) -> None:
        self.cli("models", "register", MODEL, "--model-dir", str(self.model_dir))
        exe = [str(Path(sys.executable).parent / "oasis-keda")]
        for args in (["controller", "serve"], ["worker", "serve", "--model", MODEL]):
            with (self.storage.parent / f"{args[0]}.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [*exe, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        self.server = start_server(api_settings(self.redis_url, self.storage))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in self.storage.parent.glob("*.log")
        )


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(redis_url, tmp_path)
    s.start()
    try:
        yield s
    except Exception:
        print(s.logs())
        raise
    finally:
        s.stop()


def _upload_portfolio(client: Any, stack: Stack) -> int:
    portfolio_id = int(client.portfolios.create("synth portfolio").json()["id"])
    for field, name in (("location_file", "location.csv"), ("accounts_file", "account.csv")):
        # bytes, not paths: the client leaves the files it opens for path uploads unclosed
        data = (stack.model_dir / name).read_bytes()
        client.upload_portfolio_file(portfolio_id, field, {"bytes": data, "name": name})
    return portfolio_id


def _expected_slugs(spec: Any, chunks: int) -> list[str]:
    return list(spec.slugs(chunks))


def _outputs_from_tar(data: bytes) -> dict[str, pd.DataFrame]:
    frames = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".csv"):
                fh = tar.extractfile(member)
                assert fh is not None
                frames[Path(member.name).name] = pd.read_csv(fh)
    return frames


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _run_notebook(stack: Stack, chunking: dict[str, Any]) -> tuple[Any, int, int]:
    assert stack.server is not None
    client = stack.server.client()
    model_id = client.models.search({"supplier_id": "OasisKeda"}).json()[0]["id"]
    client.models.chunking_configuration.post(model_id, chunking)
    client.models.scaling_configuration.post(
        model_id, {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 2}
    )
    settings = client.models.settings.get(model_id).json()
    assert settings["model_settings"]["event_set"]["options"][0]["number_of_events"] == EVENTS
    portfolio_id = _upload_portfolio(client, stack)
    analysis = client.create_analysis(portfolio_id, model_id, analysis_name="notebook")
    analysis_id = int(analysis["id"])
    client.upload_settings(analysis_id, analysis_settings())
    assert client.run_generate(analysis_id, poll_interval=POLL_S) is True
    return client, model_id, analysis_id


@pytest.mark.parametrize(
    ("chunking", "lookup_chunks", "loss_chunks"),
    [
        ({"fixed_lookup_chunks": 3, "fixed_analysis_chunks": 4}, 3, 4),
        pytest.param(
            {
                "lookup_strategy": "DYNAMIC_CHUNKS",
                "dynamic_locations_per_lookup": 5,
                "loss_strategy": "DYNAMIC_CHUNKS",
                "dynamic_events_per_analysis": 7,
            },
            3,  # ceil(12 / 5)
            3,  # ceil(20 / 7)
            marks=pytest.mark.slow,
        ),
    ],
    ids=["fixed", "dynamic"],
)
def test_the_notebook_flow_runs_unmodified(
    stack: Stack, chunking: dict[str, Any], lookup_chunks: int, loss_chunks: int
) -> None:
    client, _model_id, analysis_id = _run_notebook(stack, chunking)
    tasks = client.analyses.sub_task_list(analysis_id).json()
    assert [t["slug"] for t in tasks] == _expected_slugs(INPUTS_SPEC, lookup_chunks)
    assert {t["status"] for t in tasks} == {"COMPLETED"}
    a = client.analyses.get(analysis_id).json()
    assert a["status"] == "READY" and a["input_file"] and a["lookup_chunks"] == lookup_chunks
    inputs = client.analyses.input_file.get(analysis_id)
    assert inputs.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(inputs.content)) as tar:  # the whole directory
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert {"items.bin", "coverages.bin", "fm_xref.bin", "gul_summary_map.csv"} <= set(files)
    assert sorted(client.analyses.input_file_tar_list.get(analysis_id).json()) == sorted(files)
    extracted = client.analyses.input_file_tar_extract.get(analysis_id, "fm_xref.bin")
    assert extracted.content == files["fm_xref.bin"]

    assert client.run_analysis(analysis_id, poll_interval=POLL_S) is True
    tasks = client.analyses.sub_task_list(analysis_id).json()
    assert [t["slug"] for t in tasks] == _expected_slugs(LOSSES_SPEC, loss_chunks)
    assert [t["name"] for t in tasks if t["slug"].startswith("generate-losses-chunk")] == [
        f"Generate losses chunk {k}" for k in range(1, loss_chunks + 1)
    ]
    for t in tasks:
        assert t["status"] == "COMPLETED" and t["start_time"] <= t["end_time"]
    a = client.analyses.get(analysis_id).json()
    assert a["status"] == "RUN_COMPLETED" and a["analysis_chunks"] == loss_chunks
    assert a["status_count"]["COMPLETED"] == a["status_count"]["TOTAL"] == len(tasks)

    log = client.task_status.output_log.get(tasks[1]["id"])
    assert log.headers["Content-Type"] == "text/plain" and log.text

    out = client.analyses.output_file.get(analysis_id)
    assert out.headers["Content-Type"] == "application/gzip"
    frames = client.analyses.output_file.get_dataframe(analysis_id)
    assert frames and all(len(f) > 0 for f in frames.values())


def test_outputs_equal_the_clis_and_refusals_come_from_the_controller(stack: Stack) -> None:
    chunking = {"fixed_lookup_chunks": 2, "fixed_analysis_chunks": 2}
    assert stack.server is not None
    client = stack.server.client()
    model_id = client.models.search({"model_id": "Synth"}).json()[0]["id"]
    client.models.chunking_configuration.post(model_id, chunking)
    portfolio_id = _upload_portfolio(client, stack)
    analysis_id = int(client.create_analysis(portfolio_id, model_id, analysis_name="x")["id"])
    client.upload_settings(analysis_id, analysis_settings())

    # run before inputs: 400 on status, and the status unchanged
    s = stack.server.session()
    r = s.post(f"{stack.server.url}/v2/analyses/{analysis_id}/run/", json={}, timeout=10)
    assert r.status_code == 400 and "status" in r.json(), r.text
    assert client.analyses.status(analysis_id) == "NEW"

    assert client.run_generate(analysis_id, poll_interval=POLL_S) is True
    assert client.run_analysis(analysis_id, poll_interval=POLL_S) is True
    api_frames = client.analyses.output_file.get_dataframe(analysis_id)

    # the same inputs through the CLI
    settings_path = stack.storage.parent / "analysis_settings.json"
    settings_path.write_text(json.dumps(analysis_settings()))
    out = stack.cli(
        "analyses",
        "create",
        "cli-run",
        "--model",
        MODEL,
        "--locations",
        str(stack.model_dir / "location.csv"),
        "--accounts",
        str(stack.model_dir / "account.csv"),
        "--settings",
        str(settings_path),
    )
    cli_id = int(out.strip().split()[-1])
    stack.cli("analyses", "generate", str(cli_id), "--wait")
    stack.cli("analyses", "run", str(cli_id), "--wait")
    cli_out = stack.storage.parent / "cli-out"
    stack.cli("analyses", "outputs", str(cli_id), "--out", str(cli_out))
    cli_frames = {p.name: pd.read_csv(p) for p in cli_out.rglob("*.csv")}
    assert set(api_frames) == set(cli_frames)
    for name, frame in api_frames.items():
        pd.testing.assert_frame_equal(_sorted(frame), _sorted(cli_frames[name]), obj=name)

    # DYNAMIC loss chunking on a model whose event set has no number_of_events
    settings_file = read_model_dir(stack.model_dir).model_settings_json
    raw = json.loads(settings_file.read_text())
    del raw["model_settings"]["event_set"]["options"][0]["number_of_events"]
    settings_file.write_text(json.dumps(raw))
    client.models.chunking_configuration.post(model_id, {"loss_strategy": "DYNAMIC_CHUNKS"})
    before = client.analyses.get(analysis_id).json()
    r = s.post(f"{stack.server.url}/v2/analyses/{analysis_id}/run/", json={}, timeout=10)
    assert r.status_code == 400 and "number_of_events" in r.text, r.text
    after = client.analyses.get(analysis_id).json()
    assert (after["status"], after["sub_task_count"]) == (
        before["status"],
        before["sub_task_count"],
    )
    assert requests.get(f"{stack.server.url}/healthcheck/", timeout=5).ok


def test_cancel_through_the_client(stack: Stack) -> None:
    client, _model_id, analysis_id = _run_notebook(stack, {"fixed_analysis_chunks": 2})
    assert stack.server is not None
    s = stack.server.session()
    r = s.post(f"{stack.server.url}/v2/analyses/{analysis_id}/cancel/", json={}, timeout=10)
    assert r.status_code == 400 and "status" in r.json(), r.text  # nothing in progress
    r = s.post(f"{stack.server.url}/v2/analyses/{analysis_id}/run/", json={}, timeout=10)
    assert r.json()["status"] in ("RUN_QUEUED", "RUN_STARTED")
    client.cancel_analysis(analysis_id)
    assert client.analyses.status(analysis_id) == "RUN_CANCELLED"
    tasks = client.analyses.sub_task_list(analysis_id).json()
    assert "COMPLETED" not in {t["status"] for t in tasks if t["slug"] == "generate-losses-output"}
    time.sleep(3)  # a sub-task that was about to start must not revive the run
    assert client.analyses.status(analysis_id) == "RUN_CANCELLED"


@pytest.mark.slow
def test_generate_and_run_in_one_request(stack: Stack) -> None:
    assert stack.server is not None
    client = stack.server.client()
    model_id = client.models.search({"model_id": "Synth"}).json()[0]["id"]
    portfolio_id = _upload_portfolio(client, stack)
    analysis_id = int(client.create_analysis(portfolio_id, model_id, analysis_name="g+r")["id"])
    client.upload_settings(analysis_id, analysis_settings())
    watcher = redis.Redis.from_url(stack.redis_url)
    marks: list[int] = []  # the analysis's main-task marks, watched every few ms
    planned: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            fields = watcher.hkeys(keys.main_tasks(MODEL))
            marks.append(sum(f.decode().startswith(f"{analysis_id}:") for f in fields))
            counts = watcher.hgetall(keys.planned(MODEL))
            planned.append(sum(int(v) for k, v in counts.items()
                               if k.decode().startswith(f"{analysis_id}:")))  # fmt: skip
            stop.wait(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    r = client.analyses.generate_and_run(analysis_id)
    assert r.json()["status"] == "INPUTS_GENERATION_QUEUED"
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    seen = set()
    try:
        while (status := client.analyses.status(analysis_id)) not in (
            "RUN_COMPLETED",
            "RUN_ERROR",
        ):
            seen.add(status)
            assert time.monotonic() < deadline, seen
            time.sleep(POLL_S)
    finally:
        stop.set()
        thread.join(timeout=5)
        watcher.close()
    assert status == "RUN_COMPLETED"
    # one mark from the request to the end, handed from the inputs to the losses stage
    # without a gap; the planned work covers both stages from the inputs' planning on
    during = marks[marks.index(1) : len(marks) - marks[::-1].index(1)]
    assert set(during) == {1}, marks
    assert max(planned) > len(INPUTS_SPEC.slugs(1)), planned  # the loss stage's too
    slugs = [t["slug"] for t in client.analyses.sub_task_list(analysis_id).json()]
    assert slugs == _expected_slugs(LOSSES_SPEC, 1)


def test_generate_and_run_whose_run_is_refused_ends_in_run_error(stack: Stack) -> None:
    """Insured losses only, without accounts: the inputs are generated, then the run is
    refused (nothing left to run). The analysis ends RUN_ERROR with the reason, not READY."""
    assert stack.server is not None
    client = stack.server.client()
    model_id = client.models.search({"model_id": "Synth"}).json()[0]["id"]
    portfolio_id = int(client.portfolios.create("locations only").json()["id"])
    data = (stack.model_dir / "location.csv").read_bytes()
    client.upload_portfolio_file(
        portfolio_id, "location_file", {"bytes": data, "name": "location.csv"}
    )
    analysis_id = int(client.create_analysis(portfolio_id, model_id, analysis_name="il")["id"])
    client.upload_settings(analysis_id, analysis_settings() | {"gul_output": False})
    r = client.analyses.generate_and_run(analysis_id)
    assert r.json()["status"] == "INPUTS_GENERATION_QUEUED"
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while (status := client.analyses.status(analysis_id)) not in ("RUN_COMPLETED", "RUN_ERROR"):
        assert time.monotonic() < deadline, status
        time.sleep(POLL_S)
    assert status == "RUN_ERROR"
    reason = "IL losses (il_output) are dropped: the portfolio has no accounts file"
    traceback = client.analyses.run_traceback_file.get(analysis_id).text
    assert "leave no perspective to run" in traceback and reason in traceback, traceback
    [task] = client.analyses.sub_task_list(analysis_id).json()
    assert (task["slug"], task["status"]) == (LOSSES_SPEC.before[0].slug, "ERROR"), task
    assert reason in client.task_status.error_log.get(task["id"]).text
    assert client.analyses.get(analysis_id).json()["input_file"] is not None
