"""oasislmf's own ``oasislmf model run`` on the inputs a benchmark gave oasis-keda, timed,
and the comparison of the two runs' outputs; not a benchmark itself.

The run is :func:`tests.oracle.oracle_run` (the exactness tests' reference: the model's own
``oasislmf.json``, only the exposure files and analysis settings replaced, reinsurance
dropped) with ``--kernel-num-processes`` and ``--lookup-num-processes`` set, timed from the
command's start to its exit: what a user of oasislmf waits, its import included. The
outputs are compared with :func:`tests.oracle.assert_outputs_equal` (same files; key
columns equal, losses within a float32-summation tolerance).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.oracle import assert_outputs_equal, oracle_run


@dataclass(frozen=True)
class Reference:
    wall_s: float
    """``oasislmf model run`` start to exit, seconds."""
    output_dir: Path
    processes: int


def run_oasislmf(
    model_dir: Path,
    *,
    location: Path,
    accounts: Path | None,
    settings: Mapping[str, Any] | Path,
    run_dir: Path,
    processes: int = 2,
    timeout: float = 3600.0,
) -> Reference:
    """One timed ``oasislmf model run`` with ``processes`` kernel and lookup processes."""
    started = time.perf_counter()
    run = oracle_run(
        model_dir,
        location=location,
        accounts=accounts,
        settings=settings,
        run_dir=run_dir,
        extra_args=(
            *("--kernel-num-processes", str(processes)),
            *("--lookup-num-processes", str(processes)),
        ),
        timeout=timeout,
        reuse=False,
    )
    return Reference(time.perf_counter() - started, run.output_dir, processes)


def compare_outputs(ours: Path, reference: Reference, note: str) -> str:
    """``"equal"`` and the worst relative difference, or ``"DIFFER"`` and why (never raises
    on a difference: the benchmark reports it)."""
    try:
        summary = assert_outputs_equal(ours, reference.output_dir, note=note)
    except AssertionError as exc:
        first = str(exc).splitlines()[0][:300]
        return f"DIFFER ({first})"
    worst = max(summary.values()) if summary else 0.0
    return f"equal ({len(summary)} files, worst relative difference {worst:.1g})"
