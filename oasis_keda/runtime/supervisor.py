"""``oasis-keda up``: every process of the system on one machine, started and stopped in order.

Start order: Redis (an embedded ``redis-server`` unless ``OASIS_KEDA_REDIS_URL`` names one),
the scaler (ready when its gRPC health says SERVING, i.e. it has read Redis), the task
controller, the REST API when that command exists, then the local autoscaler, which runs in
this process and owns the worker processes. Stop order is the reverse, and each step waits:
the autoscaler takes every model to 0 workers with SIGTERM (warm shutdown: running chunks
finish), then the API, the controller and the scaler get SIGTERM (SIGKILL after a grace
period), then Redis. Every child runs in its own session, so a Ctrl-C in the terminal
reaches only this supervisor and the shutdown stays orderly; nothing is left running.

A scaler, controller or API that exits while the stack runs is restarted with backoff
(:mod:`oasis_keda.runtime.restarts`), and the restart is logged; the workers keep running
meanwhile, as KEDA keeps the current replicas while its scaler is unreachable. A part that
keeps exiting ends :meth:`Supervisor.serve` with PartFailedError, and ``up`` exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oasis_keda.core.settings import Settings
from oasis_keda.core.store import make_engine
from oasis_keda.runtime.autoscaler import LocalAutoscaler
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.embedded_redis import EmbeddedRedis, free_port
from oasis_keda.runtime.errors import ProcessStartError
from oasis_keda.runtime.restarts import RestartPolicy, Restarts

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0


def cli_command() -> list[str]:
    """argv prefix that runs ``oasis-keda`` with this interpreter."""
    script = Path(sys.executable).parent / "oasis-keda"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from oasis_keda.cli import main; main()"]


def command_available(module: str) -> bool:
    """True when a CLI command module exists (the API may not be built yet)."""
    return importlib.util.find_spec(module) is not None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SupervisorSettings:
    """What ``up`` runs and where it keeps its logs."""

    settings: Settings
    """Redis, storage and records database of the stack (the children get them too)."""
    autoscaler: AutoscalerSettings = dataclasses.field(default_factory=AutoscalerSettings)
    """Timings of the local KEDA + HPA (``OASIS_KEDA_AUTOSCALER_*``, see ``up``)."""
    scaler_port: int = 0
    """gRPC port of the scaler (0 = a free one)."""
    api: bool = True
    """Start the REST API (when ``oasis-keda api`` exists)."""
    api_port: int = 8000
    """Port of the REST API."""
    controller: bool = True
    """Start the task controller."""
    run_dir: Path | None = None
    """Logs of every process; default ``<storage_dir>/run``."""
    restarts: RestartPolicy = dataclasses.field(default_factory=RestartPolicy)
    """How often a crashed scaler, controller or API is restarted before ``up`` gives up."""

    @property
    def effective_run_dir(self) -> Path:
        return self.run_dir or self.settings.storage_dir / "run"


class ManagedProcess:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start the process (again, after an exit: the log is appended to)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is not None:
            self._log.close()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logger.info("started %s (pid %s), log %s", self.name, self.proc.pid, self.log_path)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_tail()
            raise ProcessStartError(
                f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n{tail}"
            )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, wait, then SIGKILL the process's session."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s: SIGKILL", self.name, grace_s)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            logger.info("stopped %s (exit %s)", self.name, proc.returncode)
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_until(
    check: Callable[[], bool], *, what: str, proc: ManagedProcess | None, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        if check():
            return
        time.sleep(0.1)
    tail = proc.log_tail() if proc is not None else ""
    raise ProcessStartError(f"{what} not ready within {timeout_s:.0f} s\n{tail}")


def scaler_serving(address: str) -> bool:
    """The scaler's gRPC health says SERVING (it can read Redis)."""
    try:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Supervisor:
    """Starts the stack (:meth:`start`), runs the autoscaler (:meth:`serve`), stops all."""

    def __init__(self, config: SupervisorSettings, *, env: Mapping[str, str]) -> None:
        self.config = config
        self.base_env = dict(env)
        self.redis: EmbeddedRedis | None = None
        self.redis_url = config.settings.redis_url
        self.processes: list[ManagedProcess] = []
        self.scaler_address = ""
        self.api_url: str | None = None
        self.autoscaler: LocalAutoscaler | None = None
        self.client: redis.Redis | None = None
        self.run_dir = config.effective_run_dir

    # -- start ----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Environment of every child: the Redis URL and storage of this stack."""
        return {
            **self.base_env,
            "OASIS_KEDA_REDIS_URL": self.redis_url,
            "OASIS_KEDA_STORAGE_DIR": str(self.config.settings.storage_dir),
            **(
                {"OASIS_KEDA_DATABASE_URL": self.config.settings.database_url}
                if self.config.settings.database_url
                else {}
            ),
            "PYTHONUNBUFFERED": "1",
            # local workers start in seconds: a raised grant need not wait a pod's minute
            "OASIS_KEDA_SCALER_START_ALLOWANCE_S": self.base_env.get(
                "OASIS_KEDA_SCALER_START_ALLOWANCE_S", "20"
            ),
            # the oasislmf pipeline tools live beside this interpreter, venv activated or not
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
            f"{self.base_env.get('PATH', os.defpath)}",
            # the API accepts its default login only inside the local runtime
            "OASIS_KEDA_LOCAL_RUNTIME": "1",
        }

    def _spawn(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(
            name, [*cli_command(), *args], env=self.env, log=self.run_dir / f"{name}.log"
        )
        self.processes.append(proc)
        proc.start()
        return proc

    def start(self) -> None:
        """Start Redis, the scaler, the controller and the API; raise if one fails."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        # Create the records schema once, before several processes would race to (SQLite's
        # CREATE TABLE is not idempotent across processes that all find it missing).
        make_engine(self.config.settings.effective_database_url).dispose()
        if not self.base_env.get("OASIS_KEDA_REDIS_URL"):
            # append-only, fsynced every second: a restart loses nothing (see RELIABILITY.md)
            self.redis = EmbeddedRedis(persistent=True, data_dir=self.run_dir / "redis")
            self.redis.start()
            self.redis_url = self.redis.url
        self.client = redis.Redis.from_url(self.redis_url)
        self.client.ping()

        port = self.config.scaler_port or free_port()
        self.scaler_address = f"127.0.0.1:{port}"
        scaler = self._spawn(
            "scaler", ["scaler", "serve", "--host", "127.0.0.1", "--port", str(port)]
        )
        wait_until(
            lambda: scaler_serving(self.scaler_address),
            what="scaler",
            proc=scaler,
            timeout_s=READY_TIMEOUT_S,
        )
        if self.config.controller:
            self._spawn("controller", ["controller", "serve"])
        if self.config.api and command_available("oasis_keda.cli.api"):
            api_port = self.config.api_port
            api = self._spawn(
                "api", ["api", "serve", "--host", "127.0.0.1", "--port", str(api_port)]
            )
            wait_until(lambda: port_open(api_port), what="API", proc=api, timeout_s=READY_TIMEOUT_S)
            self.api_url = f"http://127.0.0.1:{api_port}"
        for proc in self.processes:
            proc.check_alive()

    def make_autoscaler(self) -> LocalAutoscaler:
        assert self.client is not None, "start() first"
        cmd = cli_command()
        concurrency = str(self.config.autoscaler.worker_concurrency)

        def command(model_id: str, name: str) -> list[str]:
            return [*cmd, "worker", "serve", "--model", model_id, "--concurrency", concurrency]

        self.autoscaler = LocalAutoscaler(
            settings=self.config.autoscaler,
            client=self.client,
            scaler_address=self.scaler_address,
            command=command,
            env=self.env,
            log_dir=self.run_dir / "workers",
            samples_path=self.run_dir / "autoscaler-samples.jsonl",
        )
        return self.autoscaler

    # -- run ------------------------------------------------------------------------------

    async def serve(self, until: asyncio.Event | None = None) -> None:
        """Run the autoscaler until ``until`` is set, SIGINT/SIGTERM, or a child dies."""
        stop = until or asyncio.Event()
        loop = asyncio.get_running_loop()
        autoscaler = self.autoscaler or self.make_autoscaler()

        def on_signal() -> None:
            if stop.is_set():  # a second Ctrl-C: stop waiting for running chunks
                logger.warning("second interrupt: killing the workers")
                autoscaler.kill_all()
            stop.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        task = asyncio.create_task(autoscaler.run(), name="local-autoscaler")
        restarts = Restarts(self.config.restarts)
        due: dict[str, float] = {}  # part name -> when to restart it
        try:
            while not stop.is_set() and not task.done():
                autoscaler.track_processes()
                self._keep_parts(restarts, due)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _keep_parts(self, restarts: Restarts, due: dict[str, float]) -> None:
        """Restart the parts that exited, each after its backoff; raise PartFailedError
        for one that keeps exiting."""
        now = time.monotonic()
        for proc in self.processes:
            if proc.alive:
                continue
            if proc.name not in due:
                code = proc.proc.returncode if proc.proc is not None else None
                delay = restarts.next_delay(proc.name, now)
                logger.error(
                    "%s exited with %s; restarting it in %.0f s (restart %d)\n%s",
                    proc.name, code, delay, restarts.count(proc.name), proc.log_tail(),
                )  # fmt: skip
                due[proc.name] = now + delay
            elif now >= due[proc.name]:
                del due[proc.name]
                proc.start()
                logger.warning("restarted %s", proc.name)

    # -- stop -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child in reverse order, then Redis. Safe to call twice."""
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.redis is not None:
            self.redis.close()
            self.redis = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_stack(config: SupervisorSettings, env: Mapping[str, str]) -> Iterator[Supervisor]:
    """A started :class:`Supervisor`, stopped on exit."""
    with Supervisor(config, env=env) as sup:
        yield sup
