"""Watching a running ``oasis-keda up`` from outside: worker processes and scaler answers.

The load tests sample the real processes (``/proc``) every half second and read the
scaler's own log of its answers, so what they check is what an operator would see.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import redis

from oasis_keda.core.registry import Registry
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, make_engine, make_session_factory

#: Statuses that end an analysis's generate_and_run.
DONE = {"RUN_COMPLETED", "RUN_ERROR", "INPUTS_GENERATION_ERROR", "RUN_CANCELLED"}
#: The local runtime's default login.
LOGIN = {"username": "admin", "password": "password"}


def register_models(
    client: redis.Redis,
    models: Mapping[str, Path],
    scaling: Mapping[str, dict[str, Any]],
    limit: int | None,
    chunks: int = 4,
) -> None:
    """Register each model directory under its id (API model_id ``Load<k>``), with
    ``chunks`` lookup and loss chunks and its scaling, and set the global limit."""
    registry = Registry(client)
    for k, (model, path) in enumerate(models.items(), start=1):
        registry.register(
            model, model_dir=str(path), supplier_id="OasisKeda", model_name=f"Load{k}",
            version_id="1",
        )  # fmt: skip
        registry.set_chunking(
            model, {"fixed_lookup_chunks": chunks, "fixed_analysis_chunks": chunks}
        )
        registry.set_scaling(model, scaling[model])
    registry.set_global_worker_limit(limit)


def submit(url: str, models: Mapping[str, Path], per_model: int) -> dict[int, str]:
    """Create ``per_model`` analyses of each model through the REST API, then send every
    one to ``generate_and_run`` at once; analysis id -> model."""
    from oasislmf.platform_api.client import APIClient

    api = APIClient(api_url=url, **LOGIN)
    ids: dict[int, str] = {}
    for k, (model, path) in enumerate(models.items(), start=1):
        [record] = api.models.search({"model_id": f"Load{k}"}).json()
        settings = json.loads((path / "analysis_settings.json").read_text())
        for n in range(per_model):
            portfolio = int(api.portfolios.create(f"{model}-{n}").json()["id"])
            for field, name in (
                ("location_file", "location.csv"),
                ("accounts_file", "account.csv"),
            ):
                data = (path / name).read_bytes()
                api.upload_portfolio_file(portfolio, field, {"bytes": data, "name": name})
            analysis = int(api.create_analysis(portfolio, record["id"], f"{model}-{n}")["id"])
            api.upload_settings(analysis, settings)
            ids[analysis] = model
    for analysis in ids:
        api.analyses.generate_and_run(analysis).raise_for_status()
    return ids


def unfinished_counter(
    env: Mapping[str, str], ids: Mapping[int, str]
) -> Callable[[], dict[str, int]]:
    """A function counting, per model, the analyses not yet ended (read from the records)."""
    sessions = make_session_factory(make_engine(Settings.from_env(env).effective_database_url))
    models = sorted(set(ids.values()))

    def count() -> dict[str, int]:
        out = dict.fromkeys(models, 0)
        with sessions() as session:
            for analysis_id, model in ids.items():
                analysis = session.get(Analysis, analysis_id)
                if analysis is None or analysis.status not in DONE:
                    out[model] += 1
        return out

    return count


def children(pid: int) -> dict[int, str]:
    """Every live (not zombie) descendant of ``pid``: pid -> command line."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            child = int(stat.parent.name)
            parents[child] = int(fields[1])
            commands[child] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = commands[child]
                frontier.append(child)
    return found


def workers_by_model(pid: int, models: list[str]) -> dict[str, list[int]]:
    """The ``worker serve`` processes under ``pid``, per model."""
    out: dict[str, list[int]] = {m: [] for m in models}
    for child, command in children(pid).items():
        match = re.search(r"worker serve --model (\S+)", command)
        if match and match.group(1) in out:
            out[match.group(1)].append(child)
    return out


@dataclasses.dataclass(frozen=True)
class Sample:
    at: float
    workers: dict[str, int]
    unfinished: dict[str, int]


class Sampler:
    """Samples worker processes and unfinished analyses per model every ``interval_s``."""

    def __init__(
        self,
        pid: int,
        models: list[str],
        unfinished: Callable[[], dict[str, int]],
        interval_s: float = 0.5,
    ) -> None:
        self.pid = pid
        self.models = models
        self.unfinished = unfinished
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.time()
            procs = workers_by_model(self.pid, self.models)
            self.samples.append(
                Sample(at, {m: len(p) for m, p in procs.items()}, self.unfinished())
            )
            self._stop.wait(self.interval_s)

    def peak(self) -> int:
        return max((sum(s.workers.values()) for s in self.samples), default=0)

    def longest_gap(self, model: str) -> float:
        """Longest time ``model`` had unfinished work and no worker, after its first worker."""
        started = False
        gap_start: float | None = None
        longest = 0.0
        for s in self.samples:
            if s.workers[model]:
                started = True
            if not started:
                continue
            if s.unfinished[model] and not s.workers[model]:
                gap_start = s.at if gap_start is None else gap_start
                longest = max(longest, s.at - gap_start)
            else:
                gap_start = None
        return longest

    def worker_seconds(self) -> float:
        total = 0.0
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            total += sum(a.workers.values()) * (b.at - a.at)
        return total


_ANSWER = re.compile(
    r"^(\S+ \S+) (?:[A-Z]+ )?scaler\.deciding: model (\S+) queue \S+: desired workers (\S+) -> (\d+) "
    r"\(strategy \S+, waiting (\d+), reserved/running (\d+), main tasks (\d+), busy \d+, "
    r"live \d+, priority \d+, before budget \d+, share (\S+),"
)


@dataclasses.dataclass(frozen=True)
class Answer:
    at: float
    model: str
    previous: int | None
    desired: int
    work: int
    """Waiting plus reserved or running sub-tasks plus main tasks in progress."""
    share: int | None


def scaler_answers(log: Path) -> list[Answer]:
    """The scaler's logged answer changes, in order (restarts included)."""
    answers = []
    for line in log.read_text(errors="replace").splitlines():
        m = _ANSWER.match(line)
        if not m:
            continue
        at = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        previous = None if m.group(3) == "?" else int(m.group(3))
        share = None if m.group(8) == "-" else int(m.group(8))
        work = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
        answers.append(Answer(at, m.group(2), previous, int(m.group(4)), work, share))
    return answers


def starved_answers(answers: list[Answer], bound_s: float) -> list[str]:
    """Broken rules, as messages: a model with work and a share of at least 1 that was cut
    to 0, or that waited at 0 longer than ``bound_s`` before getting a worker."""
    problems = []
    waiting_since: dict[str, float] = {}
    for a in answers:
        starving = a.desired == 0 and a.work > 0 and (a.share or 0) >= 1
        if starving and a.previous:
            problems.append(f"{a.model} cut {a.previous} -> 0 with work and share {a.share}")
        if starving:
            waiting_since.setdefault(a.model, a.at)
        elif a.model in waiting_since:
            waited = a.at - waiting_since.pop(a.model)
            if a.desired > 0 and waited > bound_s:
                problems.append(f"{a.model} waited {waited:.1f} s at 0 with share >= 1")
    return problems
