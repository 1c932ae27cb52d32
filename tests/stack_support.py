"""Helpers for the controller/worker integration tests: real ``oasis-keda controller serve``
and ``oasis-keda worker serve`` processes on the test Redis, a storage dir, a records DB.

The processes run with the test hooks (``OASIS_KEDA_TEST_HOOKS=1``: the ``noop`` stage and
the pauses, see :mod:`oasis_keda.testing`), and so does this process, which requests them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from oasis_keda import testing
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, SubTask
from task_controller import records
from task_controller.dispatch import Dispatcher
from task_controller.requests import Requests, make_requests

#: Short leases and janitor periods so that crash recovery fits in a test.
LEASE_TTL_S = 2.0
JANITOR_GRACE_S = 2.0
JANITOR_INTERVAL_S = 0.5


def cli() -> list[str]:
    return [sys.executable, "-c", "from oasis_keda.cli import main; main()"]


class Stack:
    """Processes of one test; everything they start is stopped at the end."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "OASIS_KEDA_REDIS_URL": redis_url,
            "OASIS_KEDA_STORAGE_DIR": str(tmp_path / "storage"),
            "OASIS_KEDA_DATABASE_URL": f"sqlite:///{tmp_path / 'records.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
            testing.ENV_VAR: "1",
        }
        testing.install()  # before this process makes its Celery app
        self.settings = Settings.from_env(self.env)
        self.controller: Requests = make_requests(self.settings)
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def dispatcher(self) -> Dispatcher:
        """A Dispatcher over the same stores, to dispatch in this process."""
        c = self.controller
        return Dispatcher(sessions=c.sessions, client=c.client, storage=c.storage, app=c.app)

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [*cli(), "--log-level", "INFO", *args],
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a SIGKILL takes all of it
            )
        self.procs.append((proc, log))
        return proc

    def start_controller(self) -> subprocess.Popen[bytes]:
        return self.start(
            "controller",
            "serve",
            "--janitor-grace-s",
            str(JANITOR_GRACE_S),
            "--janitor-interval-s",
            str(JANITOR_INTERVAL_S),
            "--lease-ttl-s",
            str(LEASE_TTL_S),
            name="controller",
        )

    def start_worker(
        self, model_id: str, *, name: str = "worker", concurrency: int = 1
    ) -> subprocess.Popen[bytes]:
        proc = self.start(
            "worker",
            "serve",
            "--model",
            model_id,
            "--lease-ttl-s",
            str(LEASE_TTL_S),
            "--concurrency",
            str(concurrency),
            name=name,
        )
        self.wait_log(name, "ready.")
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def wait_log(self, name: str, text: str, timeout_s: float = 60.0) -> None:
        wait_for(lambda: text in self.log(name), timeout_s, f"{text!r} in {name}.log")

    def stop(self) -> None:
        self._stop_processes()
        self._close_clients()
        gc.collect()  # a leaked connection then warns in the test that leaked it

    def _close_clients(self) -> None:
        backend = self.controller.app.backend
        with contextlib.suppress(Exception):
            backend.result_consumer.stop()
            # A canvas sent from this process (an in-process dispatch) leaves its chord's
            # results pending; collected later, each would unsubscribe through a new
            # connection that nothing closes. With the consumer stopped there is nothing to
            # unsubscribe from.
            backend.result_consumer._pubsub = None
        with contextlib.suppress(Exception):
            backend.client.connection_pool.disconnect()
        self.controller.app.close()
        self.controller.client.close()
        self.controller.app.oasis.client.close()

    def _stop_processes(self) -> None:
        for proc, _log in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc, _log in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    # -- records -------------------------------------------------------------------------

    def analysis(self, analysis_id: int) -> Analysis:
        with self.controller.sessions() as session:
            return records.get_analysis(session, analysis_id)

    def subtasks(self, analysis_id: int, run_number: int | None = None) -> list[SubTask]:
        with self.controller.sessions() as session:
            return records.subtasks(session, analysis_id, run_number)

    def wait_status(self, analysis_id: int, statuses: set[str], timeout_s: float = 60.0) -> str:
        wait_for(
            lambda: self.analysis(analysis_id).status in statuses,
            timeout_s,
            f"analysis {analysis_id} in {statuses}",
            on_timeout=lambda: (
                f"status {self.analysis(analysis_id).status}; logs:\n"
                + "\n".join(
                    f"== {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                    for _p, log in self.procs
                )
            ),
        )
        return self.analysis(analysis_id).status


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    extra = on_timeout() if on_timeout else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}. {extra}")


@contextlib.contextmanager
def running_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(redis_url, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()
