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
    """``oasislmf model run`` start to exit, seconds (the first run)."""
    output_dir: Path
    processes: int
    runs: int = 1
    """Runs made to get the partitions in turn."""
    in_turn: bool = True
    """Whether the compared run wrote its lookup partitions in turn."""


def _key_order(input_dir: Path) -> list[object]:
    """The locations of the keys file, in its order."""
    import pandas as pd  # type: ignore[import-untyped]

    return list(pd.read_parquet(input_dir / "keys.parquet", columns=["LocID"])["LocID"])


def run_oasislmf(
    model_dir: Path,
    *,
    location: Path,
    accounts: Path | None,
    settings: Mapping[str, Any] | Path,
    run_dir: Path,
    processes: int = 2,
    timeout: float = 3600.0,
    our_inputs: Path | None = None,
    attempts: int = 3,
) -> Reference:
    """A timed ``oasislmf model run`` with ``processes`` kernel and lookup processes, run
    again while its lookup partitions are out of turn against ``our_inputs``."""
    first_s = 0.0
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        run = oracle_run(
            model_dir,
            location=location,
            accounts=accounts,
            settings=settings,
            run_dir=run_dir.with_name(f"{run_dir.name}-{attempt}"),
            extra_args=(
                *("--kernel-num-processes", str(processes)),
                *("--lookup-num-processes", str(processes)),
            ),
            timeout=timeout,
            reuse=False,
        )
        first_s = first_s or time.perf_counter() - started
        in_turn = our_inputs is None or _key_order(our_inputs) == _key_order(run.input_dir)
        if in_turn:
            break
    return Reference(first_s, run.output_dir, processes, attempt, in_turn)


def compare_outputs(ours: Path, reference: Reference, note: str) -> str:
    """``"equal"`` and the worst relative difference, or ``"DIFFER"`` and why (never raises
    on a difference: the benchmark reports it)."""
    runs = "" if reference.runs == 1 else f"; oasislmf run {reference.runs} times"
    if not reference.in_turn:
        runs += ", its lookup partitions out of turn each time"
    try:
        summary = assert_outputs_equal(ours, reference.output_dir, note=note)
    except AssertionError as exc:
        first = str(exc).splitlines()[0][:300]
        return f"DIFFER ({first}{runs})"
    worst = max(summary.values()) if summary else 0.0
    return f"equal ({len(summary)} files, worst relative difference {worst:.1g}{runs})"
