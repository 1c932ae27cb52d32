"""Worker replicas as local processes: the Deployment + kubelet of the local runtime.

Each replica is a real ``oasis-keda worker serve --model M`` process in its own session
(so a Ctrl-C on the terminal reaches only the supervisor, which then stops everything in
order). Scaling down sends SIGTERM, Celery's warm shutdown: the worker stops taking tasks,
finishes the one it runs and exits; a process still alive after ``grace_s`` (the pod's
``terminationGracePeriodSeconds``) is killed. Like pods marked with a low
``controller.kubernetes.io/pod-deletion-cost``, idle workers are picked before busy ones,
newest first. A replica that exits on its own is replaced, as a ReplicaSet would.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from worker import scratch

logger = logging.getLogger(__name__)

#: Environment variable naming a worker process's Celery node (``<name>@<host>``).
WORKER_NAME_ENV = "OASIS_KEDA_WORKER_NAME"


@dataclasses.dataclass
class WorkerProcess:
    """One replica."""

    name: str
    proc: subprocess.Popen[bytes]
    started_at: float
    stopping_at: float | None = None
    log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def node_pid(node: str) -> int | None:
    """The process id in a worker node name ``<model>.<pid>@<host>`` (``worker serve``)."""
    tail = node.split("@", 1)[0].rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else None


def is_busy(worker: WorkerProcess, busy_nodes: set[str]) -> bool:
    """True when a busy or task lease names this worker's node (by pid or by name)."""
    return any(
        node_pid(node) == worker.pid or node == worker.name or node.startswith(f"{worker.name}@")
        for node in busy_nodes
    )


def pick_victims(
    workers: Sequence[WorkerProcess], count: int, busy_nodes: set[str]
) -> list[WorkerProcess]:
    """The ``count`` workers to stop: idle before busy, then the newest first."""
    ranked = sorted(workers, key=lambda w: (is_busy(w, busy_nodes), -w.started_at))
    return ranked[: max(count, 0)]


def _tmp_base(env: Mapping[str, str]) -> Path | None:
    raw = env.get("TMPDIR")
    return Path(raw) if raw else None


CommandFactory = Callable[[str, str], list[str]]
"""(model_id, worker name) -> argv of one worker process."""


class WorkerPool:
    """The replicas of one model."""

    def __init__(
        self,
        model_id: str,
        *,
        command: CommandFactory,
        env: Mapping[str, str],
        log_dir: Path,
        grace_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_id = model_id
        self._command = command
        self._env = dict(env)
        self._log_dir = log_dir
        self.grace_s = grace_s
        self._clock = clock
        self._workers: list[WorkerProcess] = []
        self._serial = 0
        self.started = 0
        self.stopped_busy = 0
        self.crashed = 0

    # -- views --------------------------------------------------------------------------

    def reap(self) -> None:
        """Forget exited processes; count the ones that exited without being asked."""
        keep = []
        for w in self._workers:
            if w.alive:
                keep.append(w)
                continue
            # a worker killed before its clean exit leaves its temporary folder behind
            node = scratch.node_name(self.model_id, w.pid, socket.gethostname())
            scratch.release(scratch.folder_for(node, _tmp_base(self._env)))
            if w.stopping_at is None:
                self.crashed += 1
                logger.warning(
                    "worker %s (pid %s) of model %s exited with %s",
                    w.name,
                    w.pid,
                    self.model_id,
                    w.proc.returncode,
                )
            if w.log is not None:
                w.log.close()
        self._workers = keep

    @property
    def running(self) -> list[WorkerProcess]:
        """Replicas not asked to stop (the Deployment's ready pods)."""
        return [w for w in self._workers if w.stopping_at is None and w.alive]

    @property
    def live(self) -> list[WorkerProcess]:
        """Every live process, including the ones finishing their task after SIGTERM."""
        return [w for w in self._workers if w.alive]

    # -- actions ------------------------------------------------------------------------

    def _start_one(self) -> WorkerProcess:
        self._serial += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model_id)
        name = f"worker-{safe}-{self._serial}-{os.getpid()}"
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = (self._log_dir / f"{name}.log").open("ab")
        env = {**self._env, WORKER_NAME_ENV: name}
        proc = subprocess.Popen(
            self._command(self.model_id, name),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = WorkerProcess(name=name, proc=proc, started_at=self._clock(), log=log)
        self._workers.append(worker)
        self.started += 1
        logger.info("started worker %s (pid %s) for model %s", name, proc.pid, self.model_id)
        return worker

    def _terminate(self, worker: WorkerProcess, busy: bool) -> None:
        worker.stopping_at = self._clock()
        if busy:
            self.stopped_busy += 1
        try:
            worker.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        logger.info(
            "SIGTERM (warm shutdown) to worker %s (pid %s, %s) of model %s",
            worker.name,
            worker.pid,
            "busy" if busy else "idle",
            self.model_id,
        )

    def scale_to(self, replicas: int, busy_nodes: set[str]) -> None:
        """Start or stop processes so that ``replicas`` are running."""
        self.reap()
        running = self.running
        if len(running) < replicas:
            for _ in range(replicas - len(running)):
                self._start_one()
        elif len(running) > replicas:
            for worker in pick_victims(running, len(running) - replicas, busy_nodes):
                self._terminate(worker, is_busy(worker, busy_nodes))

    def enforce_grace(self) -> None:
        """Kill processes still alive ``grace_s`` after their SIGTERM."""
        now = self._clock()
        for w in self._workers:
            if w.stopping_at is not None and w.alive and now - w.stopping_at > self.grace_s:
                logger.warning("worker %s outlived its grace period: SIGKILL", w.name)
                _kill_group(w.proc)

    def kill_all(self) -> None:
        """SIGKILL every replica's session at once (a second Ctrl-C: no more waiting)."""
        for w in self._workers:
            if w.alive:
                w.stopping_at = w.stopping_at or self._clock()
                _kill_group(w.proc)

    def stop_all(self, *, grace_s: float | None = None, busy_nodes: set[str] | None = None) -> None:
        """SIGTERM every replica and wait (up to ``grace_s``) for all to exit."""
        for w in self.running:
            self._terminate(w, is_busy(w, busy_nodes or set()))
        deadline = time.monotonic() + (self.grace_s if grace_s is None else grace_s)
        for w in list(self._workers):
            remaining = max(deadline - time.monotonic(), 0.0)
            try:
                w.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                logger.warning("worker %s did not stop in time: SIGKILL", w.name)
                _kill_group(w.proc)
        self.reap()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process's session (it leads its own group: ``start_new_session``)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        logger.error("process %s survived SIGKILL", proc.pid)


_TASK_LINE = re.compile(
    r"Task (\S+)\[([0-9a-fA-F-]{8,})\] (received|succeeded|raised|retry|failed)"
    r"|(Discarding revoked task): (\S+)\[([0-9a-fA-F-]{8,})\]"
)


@dataclasses.dataclass(frozen=True)
class LogAudit:
    """What the worker logs say about every task a worker took."""

    received: int
    finished: int
    unfinished: tuple[str, ...]
    """``<log name>:<task id>`` of tasks a worker received and never finished: a chunk
    interrupted by its worker's end (killed by a scale-down, or a crash)."""


def audit_worker_logs(log_dir: Path, pattern: str = "*.log") -> LogAudit:
    """Match Celery's ``received`` lines against ``succeeded``/``raised``/``retry`` lines.

    Each worker's log is read separately, so a task redelivered to another worker after its
    first worker stopped mid-run shows up as unfinished in the first log. ``pattern``
    selects the logs (a pool names them ``worker-<model>-<n>-<autoscaler pid>.log``).
    """
    received = finished = 0
    unfinished: list[str] = []
    for log in sorted(log_dir.glob(pattern)):
        open_tasks: dict[str, str] = {}
        for line in log.read_text(errors="replace").splitlines():
            match = _TASK_LINE.search(line)
            if match is None:
                continue
            if match.group(4):  # revoked before it ran (a cancelled or failed run)
                task_id, event = match.group(6), "revoked"
            else:
                task_id, event = match.group(2), match.group(3)
            if event == "received":
                received += 1
                open_tasks[task_id] = match.group(1)
            elif open_tasks.pop(task_id, None) is not None:
                finished += 1
        unfinished += [f"{log.stem}:{task_id}" for task_id in open_tasks]
    return LogAudit(received=received, finished=finished, unfinished=tuple(unfinished))
