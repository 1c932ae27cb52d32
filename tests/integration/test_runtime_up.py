"""The local runtime through ``up``'s supervisor: real Redis, scaler, controller, workers.

Covers: the supervisor starts the scaler and the controller and stops them (nothing left
running); submitted work takes a model's workers 0 -> N -> 0 through the local KEDA + HPA
against the real scaler over gRPC (push activation, metric, cooldown); no sub-task is lost
to a scale-down (SIGTERM is a warm shutdown, idle workers go first); every analysis
completes; ``analyses timeline`` draws the timeline file. Uses the test hooks' trivial
``noop`` stage (sleeping chunks, :mod:`oasis_keda.testing`) so no oasislmf run is needed.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from oasis_keda import testing
from oasis_keda.cli import cli
from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, SubTask, make_engine, make_session_factory
from oasis_keda.runtime.autoscaler import AutoscalerSettings
from oasis_keda.runtime.supervisor import Supervisor, SupervisorSettings
from oasis_keda.runtime.workers import audit_worker_logs

MODEL = "noop-model"
CHUNKS = 8
ANALYSES = 2
DEADLINE_S = 150.0

pytestmark = pytest.mark.timeout(300)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not running: read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _redis_state(client: redis.Redis) -> dict[str, object]:
    """Every oasis-keda key with its content, for failure messages."""
    state: dict[str, object] = {}
    for key in client.scan_iter("oasis-keda*"):
        raw = client.type(key)
        kind = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "zset":
            state[key.decode()] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            state[key.decode()] = client.hgetall(key)
        elif kind == "list":
            state[key.decode()] = client.llen(key)
    return state


async def _wait_for(check, what: str, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_work_scales_workers_up_and_back_to_zero(redis_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OASIS_KEDA_REDIS_URL": redis_url,
        "OASIS_KEDA_STORAGE_DIR": str(tmp_path),
        testing.ENV_VAR: "1",  # the controller and workers run the noop stage
    }
    settings = Settings.from_env(env)
    config = SupervisorSettings(
        settings=settings,
        autoscaler=AutoscalerSettings(
            polling_interval_s=1, cooldown_period_s=2, scale_down_stabilization_s=2, grace_s=60
        ),
        api=False,
    )
    client = redis.Redis.from_url(redis_url)
    registry = Registry(client)
    registry.register(MODEL)
    registry.set_scaling(
        MODEL, {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "worker_count_max": 3}
    )
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
        "1,A1,1,GB,WTC,GBP,51.5,-0.5\n"
    )

    sup = Supervisor(config, env=env)
    await asyncio.to_thread(sup.start)
    pids = [p.proc.pid for p in sup.processes if p.proc is not None]
    worker_pids: set[int] = set()
    try:
        autoscaler = sup.make_autoscaler()
        stop = asyncio.Event()
        serving = asyncio.create_task(sup.serve(until=stop))
        await _wait_for(lambda: MODEL in autoscaler.models, "the model's autoscaler", 20)
        model = autoscaler.models[MODEL]
        assert model.state.replicas == 0  # idle model: no worker

        from task_controller.requests import make_requests

        testing.install()  # this process requests the noop stage
        controller = make_requests(settings)
        ids = []
        for k in range(ANALYSES):
            analysis_id = controller.create_analysis(
                f"a{k}", model_id=MODEL, location_file=locations
            )
            controller.request(
                analysis_id, "noop", options={"noop_chunks": CHUNKS, "noop_sleep_s": 1.5}
            )
            ids.append(analysis_id)

        def finished() -> bool:
            worker_pids.update(w.pid for w in model.pool.live)
            with controller.sessions() as session:
                statuses = [session.get(Analysis, i).status for i in ids]  # type: ignore[union-attr]
            return all(s == "READY" for s in statuses)

        await _wait_for(finished, "every analysis to complete", DEADLINE_S)
        try:
            await _wait_for(
                lambda: model.state.replicas == 0 and not model.pool.live, "workers back to 0", 60
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Redis state: {_redis_state(client)}") from None
        stop.set()
        await serving

        desired = [s.desired for s in autoscaler.samples if s.model_id == MODEL]
        assert desired[0] == 0
        assert max(desired) >= 2, desired  # scaled past one worker (N > 1)
        assert max(desired) <= 3  # worker_count_max
        assert desired[-1] == 0
        assert model.pool.crashed == 0

        engine_sessions = make_session_factory(make_engine(settings.effective_database_url))
        with engine_sessions() as session:
            subs = [s for s in session.query(SubTask).all() if s.analysis_id in ids]
        assert len(subs) == ANALYSES * (CHUNKS + 3)
        assert {s.status for s in subs} == {"COMPLETED"}
        assert [s for s in subs if s.retry_count] == []
        # every task a worker took, it finished: no sub-task was killed by a scale-down
        audit = audit_worker_logs(sup.run_dir / "workers", f"*-{os.getpid()}.log")
        assert audit.unfinished == ()
        assert audit.received >= len(subs)
        assert sum(m.pool.crashed for m in autoscaler.models.values()) == 0
        assert len({s.worker for s in subs}) >= 2  # the work really spread over workers

        out = tmp_path / "timeline.png"
        result = CliRunner().invoke(
            cli,
            ["analyses", "timeline", str(ids[0]), "--out", str(out)],
            env={"OASIS_KEDA_REDIS_URL": redis_url, "OASIS_KEDA_STORAGE_DIR": str(tmp_path)},
        )
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(b"\x89PNG")
    finally:
        if sup.autoscaler is not None and "serving" in locals() and not serving.done():
            stop.set()
            await serving
        await asyncio.to_thread(sup.stop)
        client.close()
    assert worker_pids
    assert not [pid for pid in [*pids, *worker_pids] if _alive(pid)]


def test_timeline_of_an_unknown_analysis_is_a_clear_error(redis_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["analyses", "timeline", "999", "--out", str(tmp_path / "t.png")],
        env={"OASIS_KEDA_REDIS_URL": redis_url, "OASIS_KEDA_STORAGE_DIR": str(tmp_path)},
    )
    assert result.exit_code != 0
    assert "analysis 999 does not exist" in result.output


def _wait_for_sync(check, what: str, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> dict[int, str]:
    """Live direct children of ``pid`` with their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[int(stat.parent.name)] = cmdline
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_up_command_runs_work_and_stops_on_ctrl_c(redis_url: str, tmp_path: Path) -> None:
    """``oasis-keda up`` as a user runs it: work scales workers 0 -> N -> 0, a SIGKILLed
    scaler is restarted while the workers go on, Ctrl-C stops all, no temporary folder is
    left."""
    import signal
    import subprocess

    from oasis_keda.runtime.supervisor import cli_command

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()

    env = {
        **os.environ,
        "OASIS_KEDA_REDIS_URL": redis_url,
        "OASIS_KEDA_STORAGE_DIR": str(tmp_path),
        "OASIS_KEDA_AUTOSCALER_COOLDOWN_PERIOD_S": "2",
        "OASIS_KEDA_AUTOSCALER_SCALE_DOWN_STABILIZATION_S": "2",
        testing.ENV_VAR: "1",  # the controller and workers run the noop stage
        "TMPDIR": str(scratch_root),
    }
    client = redis.Redis.from_url(redis_url)
    registry = Registry(client)
    registry.register(MODEL)
    registry.set_scaling(
        MODEL, {"scaling_strategy": "DYNAMIC_TASKS", "chunks_per_worker": 2, "worker_count_max": 3}
    )
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
        "1,A1,1,GB,WTC,GBP,51.5,-0.5\n"
    )
    log = (tmp_path / "up.out").open("wb")
    up = subprocess.Popen(
        [*cli_command(), "up", "--no-api"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    seen: dict[int, str] = {}
    try:
        _wait_for_sync(
            lambda: "Running" in (tmp_path / "up.out").read_text(), "up to be running", 60
        )
        from task_controller.requests import make_requests

        testing.install()  # this process requests the noop stage
        controller = make_requests(Settings.from_env(env))
        ids = []
        for k in range(ANALYSES):
            analysis_id = controller.create_analysis(
                f"u{k}", model_id=MODEL, location_file=locations
            )
            controller.request(
                analysis_id, "noop", options={"noop_chunks": CHUNKS, "noop_sleep_s": 1.0}
            )
            ids.append(analysis_id)

        def workers() -> dict[int, str]:
            kids = _children(up.pid)
            seen.update(kids)
            return {p: c for p, c in kids.items() if "worker serve" in c}

        def done() -> bool:
            workers()
            with controller.sessions() as session:
                return all(session.get(Analysis, i).status == "READY" for i in ids)  # type: ignore[union-attr]

        _wait_for_sync(lambda: bool(workers()), "a worker to start", 60)
        (scaler_pid,) = [p for p, c in _children(up.pid).items() if "scaler serve" in c]
        os.kill(scaler_pid, signal.SIGKILL)

        def restarted() -> bool:
            kids = _children(up.pid)
            return any("scaler serve" in c and p != scaler_pid for p, c in kids.items())

        _wait_for_sync(restarted, "the scaler to be restarted", 30)
        _wait_for_sync(done, "every analysis to complete", DEADLINE_S)
        assert len([c for c in seen.values() if "worker serve" in c]) >= 2  # 0 -> N
        _wait_for_sync(lambda: not workers(), "workers back to 0", 60)  # N -> 0
        assert up.poll() is None
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        log.close()
        client.close()
    assert seen
    assert not [pid for pid in seen if _alive(pid)]  # nothing left running
    out = (tmp_path / "up.out").read_text()
    assert "nothing left running" in out
    assert "scaler exited with -9; restarting it" in out and "restarted scaler" in out
    assert list(scratch_root.iterdir()) == []  # every worker removed its temporary folder


def test_up_exits_non_zero_when_a_part_cannot_be_restarted(redis_url: str, tmp_path: Path) -> None:
    import signal
    import subprocess

    from oasis_keda.runtime.supervisor import cli_command

    env = {**os.environ, "OASIS_KEDA_REDIS_URL": redis_url, "OASIS_KEDA_STORAGE_DIR": str(tmp_path)}
    log = (tmp_path / "up.out").open("wb")
    up = subprocess.Popen(
        [*cli_command(), "up", "--no-api", "--max-restarts", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_sync(
            lambda: "Running" in (tmp_path / "up.out").read_text(), "up to be running", 60
        )
        children = _children(up.pid)
        (controller_pid,) = [p for p, c in children.items() if "controller serve" in c]
        os.kill(controller_pid, signal.SIGKILL)
        assert up.wait(timeout=60) == 1
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        log.close()
    out = (tmp_path / "up.out").read_text()
    assert "controller exited 1 time(s) within 300 s, more than the 0 restart(s) allowed" in out
    assert "nothing left running" in out
    assert not [pid for pid in children if _alive(pid)]
