"""The ``noop`` stage: the shape of a real stage (prepare, N chunks, collect, cleanup) with
no work, for the sub-task overhead benchmark and the controller/worker tests.

It shares the inputs stage's statuses (a request moves the analysis to
``INPUTS_GENERATION_QUEUED``, success ends it ``READY``), so everything that follows a real
stage (records, leases, the scaler's main-task marks, cancel, the janitor) follows this one.
Its chunks can sleep, fail, or fail transiently on request (options in
:mod:`oasis_keda.testing`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from oasis_keda.core.config import ChunkingConfig
from oasis_keda.core.stages import INPUTS_SPEC, Job, StageSpec, step
from task_controller.chunking import FIXED, ChunkPlan
from worker.errors import InputError, TransientError

logger = logging.getLogger(__name__)


NOOP_SPEC: Final = StageSpec(
    stage="noop",
    before=(step("noop-prepare", "Noop prepare"),),
    chunk=step("noop-chunk", "Noop chunk"),
    after=(step("noop-collect", "Noop collect"), step("noop-cleanup", "Noop cleanup")),
    allowed_from=INPUTS_SPEC.allowed_from,
    queued=INPUTS_SPEC.queued,
    started=INPUTS_SPEC.started,
    done=INPUTS_SPEC.done,
    error=INPUTS_SPEC.error,
    cancelled=INPUTS_SPEC.cancelled,
)


def plan(config: ChunkingConfig, job: Job) -> ChunkPlan:
    """``noop_chunks`` chunks (default 1), whatever the chunking configuration says."""
    chunks = int(job["options"].get("noop_chunks", 1))
    return ChunkPlan(stage=job["stage"], strategy=FIXED, chunks=chunks, basis=None)


# -- step bodies (the worker's task convention, see worker.tasks) ------------------------


def noop_prepare(job: Job, subtask_id: int) -> None:
    print(f"noop stage of analysis {job['analysis_id']}: {job['num_chunks']} chunks")


def noop_chunk(job: Job, subtask_id: int, chunk_index: int) -> int:
    fail_chunk = job["options"].get("noop_fail_chunk")
    sleep_s = float(job["options"].get("noop_sleep_s", 0))
    if sleep_s:
        print(f"noop chunk {chunk_index} sleeping {sleep_s} s")
        time.sleep(sleep_s)
    transient = int(job["options"].get("noop_transient_failures", 0))
    if transient:
        # Fails the first ``transient`` attempts of chunk 1 with a TransientError.
        counter = Path(job["run_root"]) / f".noop-attempts-{chunk_index}"
        attempts = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(attempts + 1))
        if chunk_index == 1 and attempts < transient:
            raise TransientError(f"noop chunk 1 attempt {attempts + 1} failed on purpose")
    if fail_chunk == chunk_index:
        raise InputError(f"noop chunk {chunk_index} was told to fail")
    return chunk_index


def noop_collect(results: list[int], job: Job, subtask_id: int) -> int:
    return len(results)


def noop_cleanup(count: int, job: Job, subtask_id: int) -> None:
    logger.info("noop stage collected %s chunks", count)


#: Bodies by step slug, as ``worker.tasks.register_bodies`` takes them.
BODIES: Final[dict[str, Callable[..., Any]]] = {
    fn.__name__.replace("_", "-"): fn
    for fn in (noop_prepare, noop_chunk, noop_collect, noop_cleanup)
}
