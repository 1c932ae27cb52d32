"""A worker's start-up: the heavy imports in a background thread, and its readiness.

Importing oasislmf (with pandas, numba, scikit-learn and the pipeline tools) takes seconds,
and a chunk's first call of each compiled tool function loads its machine code from the
numba cache. A worker that did all of that before starting Celery would be seconds late to
its queue. Instead :func:`start` runs it in a daemon thread at process start, in stages
(:data:`STAGES`); Celery starts at once, and a sub-task waits only for the stages its step
needs (:data:`STEP_NEEDS`, see :func:`wait_for`) before it runs.

Readiness: the worker is *ready* when Celery consumes its queue and every stage is done,
that is when a task can start without waiting for imports. It is then observable as a file
(``--ready-file``, the Kubernetes readiness probe tests it), removed again when the worker
shuts down.

Importing the same modules from two threads is safe: Python's import lock holds a thread
that wants a module another thread is importing until that import has finished. The task
still waits for its stages explicitly, so that it never sees a half-imported package.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: The stages of the warm-up, in order, and the modules each one imports.
STAGES: Mapping[str, tuple[str, ...]] = {
    # the Python API: the lookup, the input files, the loss run directory, the run options
    "oasislmf": (
        "pandas",
        "oasislmf.manager",
        "oasislmf.computation.generate.losses",
        "oasislmf.execution.bash",
        "ods_tools.oed",
        "worker.lookup",
        "worker.losses",
    ),
    # the pipeline tools a loss chunk and the output step run in this process
    "tools": (
        "oasislmf.pytools.eve.cli",
        "oasislmf.pytools.gulmc.cli",
        "oasislmf.pytools.gulpy",
        "oasislmf.pytools.fm.cli",
        "oasislmf.pytools.pla.cli",
        "oasislmf.pytools.summary.cli",
        "oasislmf.pytools.elt.cli",
        "oasislmf.pytools.plt.cli",
        "oasislmf.pytools.aal.cli",
        "oasislmf.pytools.lec.cli",
        "oasislmf.pytools.kat.cli",
        "worker.script",
        "worker.summary_streams",
    ),
}

#: What each step needs before it runs (steps not named need nothing: the test stage).
STEP_NEEDS: Mapping[str, tuple[str, ...]] = {
    "prepare-input-generation-params": ("oasislmf",),
    "prepare-keys-file": ("oasislmf",),
    "collect-keys": ("oasislmf",),
    "write-input-files": ("oasislmf",),
    "write-fm-input-files": ("oasislmf",),
    # reads the run options (the keys files' names) through oasislmf's loader
    "cleanup-input-generation": ("oasislmf",),
    "prepare-losses-generation-directory": ("oasislmf",),
    "generate-losses-chunk": ("oasislmf", "tools"),
    "generate-losses-output": ("oasislmf", "tools"),
    "cleanup-losses-generation": (),
}


class WarmUpError(RuntimeError):
    """A warm-up stage failed to import; the steps that need it fail with this."""


@dataclass
class WarmUp:
    """The background warm-up of one process, and the worker's readiness file."""

    stages: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(STAGES))
    ready_file: Path | None = None
    importer: Callable[[str], object] = importlib.import_module

    def __post_init__(self) -> None:
        self._done = {name: threading.Event() for name in self.stages}
        self._errors: dict[str, BaseException] = {}
        self._lock = threading.Lock()
        self._consuming = False
        self._thread: threading.Thread | None = None
        self.started_at = time.monotonic()
        self.seconds: dict[str, float] = {}

    def start(self) -> None:
        """Start the imports in a daemon thread (once)."""
        if self._thread is not None:
            return
        self.clear_ready()
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="oasis-keda-warm-up", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Imports allocate many objects and free few: the cyclic collector finds nothing
        # then, and costs about a seventh of their time. Off while they run (process-wide).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._import_stages()
        finally:
            if collecting:
                gc.enable()
        total = time.monotonic() - self.started_at
        logger.info(
            "warm-up done in %.2f s (%s)",
            total,
            ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items()),
        )
        self._update_ready()

    def _import_stages(self) -> None:
        for name, modules in self.stages.items():
            t0 = time.monotonic()
            try:
                for module in modules:
                    self.importer(module)
            except BaseException as exc:  # the tasks that need it report it
                logger.exception("warm-up stage %s failed", name)
                self._errors[name] = exc
            self.seconds[name] = time.monotonic() - t0
            self._done[name].set()

    @property
    def warm(self) -> bool:
        """Every stage done (failed stages included: waiting for them would not help)."""
        return all(event.is_set() for event in self._done.values())

    def wait_for(self, stages: tuple[str, ...], timeout_s: float | None = None) -> None:
        """Block until ``stages`` are imported; raise :class:`WarmUpError` if one failed."""
        for name in stages:
            event = self._done.get(name)
            if event is None:
                continue
            if not event.wait(timeout_s):
                raise WarmUpError(f"warm-up stage {name} not done after {timeout_s} s")
            if name in self._errors:
                exc = self._errors[name]
                raise WarmUpError(
                    f"warm-up stage {name} failed: {type(exc).__name__}: {exc}"
                ) from exc

    def wait_all(self, timeout_s: float | None = None) -> None:
        """Block until every stage is done (failed ones included)."""
        for event in self._done.values():
            event.wait(timeout_s)

    def wait_for_step(self, slug: str) -> float:
        """Block until the stages step ``slug`` needs are done; return the seconds waited."""
        t0 = time.monotonic()
        self.wait_for(STEP_NEEDS.get(slug, ()))
        return time.monotonic() - t0

    # -- readiness ---------------------------------------------------------------------

    def consuming(self, value: bool) -> None:
        """Celery consumes the queue (True) or is shutting down (False)."""
        self._consuming = value
        self._update_ready()

    def connect_celery(self) -> None:
        """Follow Celery: consuming from ``worker_ready``, no more from its shutdown."""
        from celery import signals

        def on_ready(**_: object) -> None:
            self.consuming(True)

        def on_shutdown(**_: object) -> None:
            self.consuming(False)

        signals.worker_ready.connect(on_ready, weak=False)
        signals.worker_shutting_down.connect(on_shutdown, weak=False)

    @property
    def ready(self) -> bool:
        """Celery consumes and every stage imported (a failed one: never ready)."""
        return self._consuming and self.warm and not self._errors

    def _update_ready(self) -> None:
        with self._lock:
            if self.ready:
                self._write_ready()
            else:
                self.clear_ready()

    def _write_ready(self) -> None:
        if self.ready_file is None:
            return
        self.ready_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.ready_file.with_name(f".{self.ready_file.name}.partial")
        partial.write_text(f"{time.time():.3f}\n", encoding="utf-8")
        partial.replace(self.ready_file)
        logger.info("worker ready: %s", self.ready_file)

    def clear_ready(self) -> None:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)


#: This process's warm-up; :func:`start` replaces it. Until then nothing waits.
_CURRENT = WarmUp(stages={})


def current() -> WarmUp:
    return _CURRENT


def start(*, ready_file: Path | None = None, imports: bool = True) -> WarmUp:
    """Start this process's warm-up (``imports=False``: no imports, ready once consuming)."""
    global _CURRENT
    _CURRENT = WarmUp(stages=dict(STAGES) if imports else {}, ready_file=ready_file)
    _CURRENT.start()
    return _CURRENT
