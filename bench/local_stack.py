"""Real ``oasis-keda controller serve`` and ``worker serve`` processes on one shared store,
for the end-to-end benchmarks (``bench_speedup``, ``bench_chaz``); not a benchmark itself.

:class:`Stack` starts the controller and the worker processes of a phase, creates analyses
and times a stage from its request to its terminal status in the records store. What a
stage cost comes from its sub-task records (each sub-task's busy seconds, its worker), the
worker processes' CPU time, the whole machine's CPU time and each worker's peak resident
memory (:class:`RssWatch`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from bench.stage_stats import stage_stats
from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import StageSpec

TIMEOUT_S = 3600.0
POLL_S = 0.05
_HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _HZ  # utime stime cutime cstime


def machine_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine since boot (all cores)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _HZ


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min)"


def _status_kib(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` memory field (``VmRSS``, ``VmHWM``) in KiB; 0 if gone."""
    with suppress(OSError, StopIteration, IndexError, ValueError):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith(key + ":")).split()[1])
    return 0


def _children(pid: int) -> list[int]:
    """The process's children and theirs (from ``/proc/PID/task/*/children``)."""
    found: list[int] = []
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            found.extend(int(c) for c in tasks.read_text().split())
    return found + [g for c in found for g in _children(c)]


class RssWatch:
    """Peak resident memory of each worker process (and its children) over a window.

    Linux keeps a process's peak (``VmHWM``) and resets it when ``5`` is written to
    ``/proc/PID/clear_refs``; a thread also samples the memory of the process and its
    children every 0.2 s (a solo-pool worker runs its chunks in its own process, so there
    are usually none).
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0)
        self.starts = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Self:
        for pid in self.pids:
            with suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.starts[pid] = _status_kib(pid, "VmRSS") * 1024
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for pid in self.pids:
                kib = sum(_status_kib(p, "VmRSS") for p in (pid, *_children(pid)))
                self.peaks[pid] = max(self.peaks[pid], kib * 1024)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for pid in self.pids:
            self.peaks[pid] = max(self.peaks[pid], _status_kib(pid, "VmHWM") * 1024)


@dataclass(frozen=True)
class StageTime:
    wall_s: float
    """Request to terminal status, seconds."""
    chunks_s: float
    """First chunk start to last chunk end, from the sub-task records, seconds."""
    workers: int
    """Distinct worker nodes that ran chunks."""
    worker_cpu_s: float
    """CPU seconds the worker processes used during the stage."""
    busy_cores: float
    """Whole machine: non-idle CPU time during the stage / wall time (all processes)."""
    chunk_busy_s: tuple[float, ...] = ()
    """Each chunk sub-task's start to end, seconds."""
    serial_busy_s: float = 0.0
    """Start to end of the sub-tasks before and after the chunks."""
    alone_s: float = 0.0
    """Seconds in which one sub-task of the stage ran alone (``bench.stage_stats``)."""
    peak_rss: dict[int, int] = field(default_factory=dict)
    """Each worker process's peak resident memory in the stage, bytes."""
    start_rss: dict[int, int] = field(default_factory=dict)
    """Each worker process's resident memory when the stage was requested, bytes."""

    @property
    def busy_s(self) -> float:
        """Busy seconds of every sub-task of the stage."""
        return sum(self.chunk_busy_s) + self.serial_busy_s

    @property
    def serial_fraction(self) -> float:
        """Seconds a sub-task ran alone over the stage's busy seconds."""
        return self.alone_s / self.busy_s if self.busy_s else 0.0

    def efficiency(self, workers: int) -> float:
        """Sub-task busy seconds over what ``workers`` workers could give in the wall time."""
        return self.busy_s / (workers * self.wall_s)

    @property
    def spread(self) -> float:
        """Slowest chunk over the median chunk."""
        if not self.chunk_busy_s:
            return 0.0
        return max(self.chunk_busy_s) / statistics.median(self.chunk_busy_s)


class Stack:
    """One controller process and the worker processes of a phase, on a shared store."""

    def __init__(self, settings: Settings, root: Path, model_id: str, settings_file: Path) -> None:
        self.root = root
        self.model_id = model_id
        self.settings_file = settings_file
        self.env = {
            **os.environ,
            "OASIS_KEDA_REDIS_URL": settings.redis_url,
            "OASIS_KEDA_STORAGE_DIR": str(root / "storage"),
            "OASIS_KEDA_DATABASE_URL": f"sqlite:///{root / 'records.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
        }
        self.settings = Settings.from_env(self.env)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.worker_pids: list[int] = []
        from task_controller.requests import make_requests

        self.controller = make_requests(self.settings)

    def start(self, name: str, *args: str, ready: str | None = None) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from oasis_keda.cli import main; main()"]
                + ["--log-level", "INFO", *args],
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 300
        while ready and ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not become ready:\n{tail}")
            time.sleep(0.1)
        return proc

    @contextmanager
    def workers(self, count: int, phase: str) -> Iterator[None]:
        started = [
            self.start(
                f"worker-{phase}-{i}",
                *("worker", "serve", "--model", self.model_id, "--concurrency", "1"),
                ready="ready.",
            )
            for i in range(count)
        ]
        self.worker_pids = [proc.pid for proc in started]
        try:
            yield
        finally:
            self.worker_pids = []
            for proc in started:
                proc.terminate()  # warm shutdown; nothing is running by now
            for proc in started:
                proc.wait(timeout=120)

    def analysis(
        self, name: str, locations: Path, accounts: Path | None, chunking: dict[str, Any]
    ) -> int:
        return self.controller.create_analysis(
            name,
            model_id=self.model_id,
            location_file=locations,
            accounts_file=accounts,
            settings_file=self.settings_file,
            chunking=chunking,
        )

    def _wait(self, analysis_id: int, spec: StageSpec) -> str:
        from task_controller import records

        done = {spec.done, spec.error, spec.cancelled}
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with self.controller.sessions() as session:
                status = records.get_analysis(session, analysis_id).status
            if status in done:
                return str(status)
            if time.monotonic() > deadline:
                raise RuntimeError(f"analysis {analysis_id} {spec.stage}: still {status}")
            time.sleep(POLL_S)

    def stage(self, analysis_id: int, spec: StageSpec) -> StageTime:
        from task_controller import records

        cpu0 = sum(cpu_s(pid) for pid in self.worker_pids)
        busy0 = machine_busy_s()
        with RssWatch(list(self.worker_pids)) as rss:
            start = time.perf_counter()
            self.controller.request(analysis_id, spec.stage)
            status = self._wait(analysis_id, spec)
            wall = time.perf_counter() - start
        busy = (machine_busy_s() - busy0) / wall
        cpu = sum(cpu_s(pid) for pid in self.worker_pids) - cpu0
        with self.controller.sessions() as session:
            subs = records.subtasks(session, analysis_id)
            if status != spec.done:
                errors = "\n".join(s.error_log or "" for s in subs if s.error_log)
                raise RuntimeError(f"analysis {analysis_id} {spec.stage} ended {status}:\n{errors}")
            slugs = set(spec.slugs(0))
            mine = [s for s in subs if s.slug in slugs or s.slug.startswith(spec.chunk.slug + "-")]
            chunks = [s for s in mine if s.slug.startswith(spec.chunk.slug + "-")]
            serial = [s for s in mine if s not in chunks]

            def busy_s(sub: Any) -> float:
                if sub.start_time is None or sub.end_time is None:
                    return 0.0
                return float((sub.end_time - sub.start_time).total_seconds())

            starts = [s.start_time for s in chunks if s.start_time is not None]
            ends = [s.end_time for s in chunks if s.end_time is not None]
            span = (max(ends) - min(starts)).total_seconds()
            nodes = {s.worker for s in chunks if s.worker}
            chunk_busy = tuple(busy_s(s) for s in chunks)
            serial_busy = sum(busy_s(s) for s in serial)
            alone = stage_stats(mine).serial_s
        return StageTime(
            wall_s=wall,
            chunks_s=span,
            workers=len(nodes),
            worker_cpu_s=cpu,
            busy_cores=busy,
            chunk_busy_s=chunk_busy,
            serial_busy_s=serial_busy,
            alone_s=alone,
            peak_rss=dict(rss.peaks),
            start_rss=dict(rss.starts),
        )

    def outputs(self, analysis_id: int) -> Path:
        """The directory of the analysis's ORD outputs in the store."""
        from oasis_keda.core.store import StoredFile
        from task_controller import records

        with self.controller.sessions() as session:
            analysis = records.get_analysis(session, analysis_id)
            stored = session.get(StoredFile, analysis.output_file_id)
            if stored is None:
                raise RuntimeError(f"analysis {analysis_id} has no outputs")
            return Path(self.controller.storage.abspath(stored.path)).parent / "outputs"

    def inputs(self, analysis_id: int) -> Path:
        """The directory of the analysis's Oasis input files in the store."""
        from task_controller import records

        with self.controller.sessions() as session:
            analysis = records.get_analysis(session, analysis_id)
            return Path(records.input_dir(session, self.controller.storage, analysis))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        backend = self.controller.app.backend
        with suppress(Exception):  # closing, best effort
            backend.result_consumer.stop()
        with suppress(Exception):
            backend.client.connection_pool.disconnect()
        self.controller.app.close()
        self.controller.client.close()
        self.controller.app.oasis.client.close()
