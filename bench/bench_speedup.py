"""Speed-up of a PiWind full-portfolio analysis on 2 workers against 1.

What a user gets from a second worker: the same chunked analysis (8 lookup chunks, 10 loss
chunks) on PiWind's full location file, through real ``oasis-keda controller serve`` and
``oasis-keda worker serve --model`` processes (``--concurrency 1`` each: one worker per pod),
first with one worker, then with two. Timed: each stage's wall clock from the request to
its terminal status in the records store (READY for the lookup, RUN_COMPLETED for the
losses), so planning, queueing, the serial first and last steps and the chord join count.
From the sub-task records we also report the span of the chunk phase alone (first chunk
start to last chunk end), the part a second worker can shorten.

Before each timed pair, every worker process of the phase runs one untimed analysis of the
10-row PiWind portfolio with the same chunking: the persistent numba cache is warm and each
worker has the compiled code and the model loaded, as a long-running worker has.

The machine is shared with other jobs (2 cores): the load average before and after is
reported, and the figures are a snapshot, not a controlled measurement. Skipped, with a
note, when /work/shared/piwind is absent.

Run alone: ``python -m oasis_keda.runtime.embedded_redis -- python -m bench bench_speedup``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC, StageSpec

PIWIND = Path(
    os.environ.get("OASIS_KEDA_BENCH_PIWIND")
    or Path(__file__).resolve().parents[2] / "shared" / "piwind"
)
INPUTS = PIWIND / "tests" / "inputs"
LOCATIONS = INPUTS / "SourceLocOEDPiWind.csv"
WARM_LOCATIONS = INPUTS / "SourceLocOEDPiWind10.csv"
ACCOUNTS = INPUTS / "SourceAccOEDPiWind.csv"
LOOKUP_CHUNKS = 8
LOSS_CHUNKS = 10
SAMPLES = 10
GOAL = 1.7
ROUNDS = int(os.environ.get("OASIS_KEDA_BENCH_ROUNDS", "3"))
TIMEOUT_S = 1800.0
POLL_S = 0.05


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


_HZ = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _HZ  # utime stime cutime cstime


def _machine_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine since boot (all cores)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _HZ


def _load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min)"


def _rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def _settings_file(root: Path) -> Path:
    """PiWind's analysis settings without reinsurance (no RI files here), samples explicit."""
    settings = json.loads((PIWIND / "analysis_settings.json").read_text(encoding="utf-8"))
    for key in ("ri_output", "ri_summaries"):
        settings.pop(key, None)
    settings["number_of_samples"] = SAMPLES
    path = root / "analysis_settings.json"
    path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return path


class _Stack:
    """One controller process and the worker processes of a phase, on a shared store."""

    def __init__(self, settings: Settings, root: Path, model_id: str) -> None:
        self.root = root
        self.model_id = model_id
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
        self.settings_file = _settings_file(root)
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

    def analysis(self, name: str, locations: Path) -> int:
        return self.controller.create_analysis(
            name,
            model_id=self.model_id,
            location_file=locations,
            accounts_file=ACCOUNTS,
            settings_file=self.settings_file,
            chunking={
                "fixed_lookup_chunks": LOOKUP_CHUNKS,
                "fixed_analysis_chunks": LOSS_CHUNKS,
            },
        )

    def stage(self, analysis_id: int, spec: StageSpec) -> StageTime:
        from task_controller import records

        done = {spec.done, spec.error, spec.cancelled}
        cpu0 = sum(_cpu_s(pid) for pid in self.worker_pids)
        busy0 = _machine_busy_s()
        start = time.perf_counter()
        self.controller.request(analysis_id, spec.stage)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with self.controller.sessions() as session:
                status = records.get_analysis(session, analysis_id).status
            if status in done:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"analysis {analysis_id} {spec.stage}: still {status}")
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        busy = (_machine_busy_s() - busy0) / wall
        cpu = sum(_cpu_s(pid) for pid in self.worker_pids) - cpu0
        with self.controller.sessions() as session:
            subs = records.subtasks(session, analysis_id)
            chunks = [s for s in subs if s.slug.startswith(spec.chunk.slug + "-")]
            if status != spec.done:
                errors = "\n".join(s.error_log or "" for s in subs if s.error_log)
                raise RuntimeError(f"analysis {analysis_id} {spec.stage} ended {status}:\n{errors}")
            starts = [s.start_time for s in chunks if s.start_time is not None]
            ends = [s.end_time for s in chunks if s.end_time is not None]
            span = (max(ends) - min(starts)).total_seconds()
            nodes = {s.worker for s in chunks if s.worker}
        return StageTime(
            wall_s=wall, chunks_s=span, workers=len(nodes), worker_cpu_s=cpu, busy_cores=busy
        )

    def run_pair(self, name: str, locations: Path) -> tuple[StageTime, StageTime]:
        analysis_id = self.analysis(name, locations)
        lookup = self.stage(analysis_id, INPUTS_SPEC)
        loss = self.stage(analysis_id, LOSSES_SPEC)
        return lookup, loss

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


def measure(settings: Settings) -> dict[str, Any]:
    """Rounds of (1 worker, then 2 workers), each with its warm-up, so load drift on the
    shared machine hits both configurations alike."""
    model_id = f"bench-piwind-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.redis_url)
    results: dict[str, Any] = {"load_before": _load(), "loads": {1: [], 2: []}}
    timed: dict[int, list[tuple[StageTime, StageTime]]] = {1: [], 2: []}
    try:
        Registry(client).register(model_id, model_dir=str(PIWIND))
        with tempfile.TemporaryDirectory(prefix="oasis-keda-bench-speedup-") as tmp:
            stack = _Stack(settings, Path(tmp), model_id)
            try:
                stack.start("controller", "controller", "serve", ready="ready.")
                for r in range(ROUNDS):
                    for count in (1, 2):
                        with stack.workers(count, f"{count}w-{r}"):
                            stack.run_pair(f"warm-{count}-{r}", WARM_LOCATIONS)  # untimed
                            results["loads"][count].append(_load())
                            timed[count].append(stack.run_pair(f"timed-{count}-{r}", LOCATIONS))
            finally:
                stack.close()
    finally:
        Registry(client).delete(model_id)
        client.close()
    results["load_after"] = _load()
    results["timed"] = timed
    return results


def _fmt_rows(what: str, ones: list[StageTime], twos: list[StageTime]) -> list[str]:
    rows = []
    for r, (one, two) in enumerate(zip(ones, twos, strict=True), start=1):
        # Amdahl: the serial steps stay, the chunk phase halves at best.
        bound = one.wall_s / (one.wall_s - one.chunks_s / 2)
        rows.append(
            f"| {what} | {r} | {one.wall_s:.1f} | {two.wall_s:.1f} "
            f"| {one.wall_s / two.wall_s:.2f}x | {bound:.2f}x "
            f"| {one.chunks_s:.1f} / {two.chunks_s:.1f} ({one.chunks_s / two.chunks_s:.2f}x) "
            f"| {one.worker_cpu_s:.0f} ({one.worker_cpu_s / one.wall_s:.2f}) "
            f"/ {two.worker_cpu_s:.0f} ({two.worker_cpu_s / two.wall_s:.2f}) "
            f"| {one.busy_cores:.2f} / {two.busy_cores:.2f} "
            f"| {one.workers} / {two.workers} |"
        )
    best = min(o.wall_s for o in ones) / min(t.wall_s for t in twos)
    verdict = "meets" if best >= GOAL else "misses"
    rows.append(
        f"| **{what}, best of each** | | {min(o.wall_s for o in ones):.1f} "
        f"| {min(t.wall_s for t in twos):.1f} | **{best:.2f}x** ({verdict} >= {GOAL}x) "
        "| | | | | |"
    )
    return rows


def run(settings: Settings) -> str:
    title = "## Speed-up on 2 workers against 1 (PiWind, full portfolio)"
    if not LOCATIONS.is_file():
        return (
            f"{title}\n\nSkipped: {LOCATIONS} is absent (PiWind is not in /work/shared here). "
            "Run `python -m bench bench_speedup` on a machine that has it.\n"
        )
    rows = _rows(LOCATIONS)
    result = measure(settings)
    ones, twos = result["timed"][1], result["timed"][2]
    loads_1 = ", ".join(result["loads"][1])
    loads_2 = ", ".join(result["loads"][2])
    lines = [
        title,
        "",
        (
            f"PiWind, `{LOCATIONS.name}` ({rows:,} location rows; the file has {rows + 1:,} "
            f"lines with its header) and `{ACCOUNTS.name}`, PiWind's analysis settings "
            f"without reinsurance, {SAMPLES} samples; {LOOKUP_CHUNKS} lookup chunks and "
            f"{LOSS_CHUNKS} loss chunks in both configurations. Real `oasis-keda controller "
            "serve` and `oasis-keda worker serve --model ... --concurrency 1` processes (1 "
            "worker, then 2), local Redis, SQLite records. Each worker first ran one untimed "
            "analysis of the 10-row portfolio (warm numba cache, code and model loaded). Wall "
            "clock from the request to READY / RUN_COMPLETED in the records. Chunk phase: "
            "first chunk start to last chunk end from the sub-task records (the serial first "
            "and last steps excluded). Bound: Amdahl's limit from the 1-worker run (its wall "
            "time over that time minus half its chunk phase). Worker CPU: CPU seconds our "
            "worker processes used in the stage, and in brackets the cores they got (CPU / "
            "wall). Busy cores: the whole machine's non-idle CPU time in the stage / its wall "
            f"time (all processes, ours and others'; at most {os.cpu_count()}). {ROUNDS} "
            "rounds, each a 1-worker then a 2-worker run. The chunks are CPU-bound and cost "
            "the same CPU either way, so the speed-up follows the cores the two workers get: "
            "near the bound when they get close to 2, none when another job holds a core."
        ),
        "",
        "Command: `python -m oasis_keda.runtime.embedded_redis -- python -m bench bench_speedup`.",
        "",
        (
            f"**Shared machine**: {os.cpu_count()} cores shared with other running jobs "
            f"(other helpers' tests and benchmarks); load average before "
            f"{result['load_before']}, at the 1-worker timed runs {loads_1}, at the "
            f"2-worker timed runs {loads_2}, after {result['load_after']}. A second worker "
            "only helps when a second core is free, so these figures are a snapshot under "
            "that load, not what the machine does alone."
        ),
        "",
        (
            "| stage | round | 1 worker (s) | 2 workers (s) | speed-up | bound | chunk phase "
            "1w / 2w (s) | worker CPU s (cores) 1w / 2w | busy cores 1w / 2w | workers that "
            "ran chunks |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
        *_fmt_rows(f"lookup ({LOOKUP_CHUNKS} chunks)", [o[0] for o in ones], [t[0] for t in twos]),
        *_fmt_rows(f"losses ({LOSS_CHUNKS} chunks)", [o[1] for o in ones], [t[1] for t in twos]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(Settings.from_env(os.environ)))
