"""Fixed cost of one loss chunk and of one lookup chunk, on oasislmf.

Fixed cost of a chunk = (N chunks run one after another - the unchunked run) / N: what
splitting costs beyond the work itself. Measured with a warm numba cache (a warm-up run
first), calling the worker's stage functions in this process as a long-lived worker does:

- loss chunks, in-process pipeline (``worker.script``: oasislmf's chunk script interpreted
  in this process, tools' compiled code loaded once) and oasislmf's own bash pipeline (a
  process per tool per chunk). oasislmf's CLI also pays a fresh ``import oasislmf`` per
  chunk (about 4.4 s here: importing oasislmf in a fresh process), which neither of these pays.
- lookup chunks (``prepare_keys_chunk`` x N + ``collect_keys``).

Models: the built-in synthetic model, and PiWind when /work/shared/piwind is present (its
10-row portfolio for losses: 1,447 events; its 12,599-row portfolio for the lookup).

Run alone: ``python -m bench.bench_chunks`` (prints the markdown).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oasis_keda.core.settings import Settings

LOSS_CHUNKS = 10
BASH_LOSS_CHUNKS = 4
LOOKUP_CHUNKS = 8
GOAL_S = 2.0
REPEATS = int(os.environ.get("OASIS_KEDA_BENCH_REPEATS", "3"))
PIWIND = (
    Path(os.environ.get("OASIS_KEDA_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
    / "piwind"
)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _loss_chunks(model: Any, inputs: Path, settings: dict[str, Any], n: int, work: Path) -> float:
    """Seconds spent in the n chunks of one run (preparation and output step excluded)."""
    from worker import losses

    run_dir = work / f"run-{n}-{time.monotonic_ns()}"
    losses.prepare_losses_dir(
        model=model, input_dir=inputs, analysis_settings=settings, run_dir=run_dir
    )
    spent = 0.0
    for k in range(1, n + 1):
        t0 = time.perf_counter()
        losses.run_loss_chunk(model=model, run_dir=run_dir, chunk_index=k, num_chunks=n)
        spent += time.perf_counter() - t0
    out = work / f"out-{n}-{time.monotonic_ns()}"
    losses.generate_losses_output(model=model, run_dir=run_dir, num_chunks=n, output_dir=out)
    return spent


def _lookup_chunks(model: Any, options: Any, location_file: Path, n: int, work: Path) -> float:
    from worker import lookup

    def go() -> None:
        out = work / f"keys-{n}-{time.monotonic_ns()}"
        chunks = [
            lookup.prepare_keys_chunk(
                model=model,
                options=options,
                location_file=location_file,
                chunk_index=k,
                num_chunks=n,
                out_dir=out / "c",
            )
            for k in range(1, n + 1)
        ]
        lookup.collect_keys(
            options=options,
            location_file=location_file,
            chunk_outputs=chunks,
            out_dir=out / "keys",
        )

    return _timed(go)


def _fixed_cost(measure: Callable[[int], float], n: int) -> tuple[float, float, float]:
    """(unchunked s, n chunks s, fixed cost per chunk s), medians of REPEATS."""
    measure(1)  # warm-up: numba cache, imports, model data
    one = statistics.median([measure(1) for _ in range(REPEATS)])
    many = statistics.median([measure(n) for _ in range(REPEATS)])
    return one, many, (many - one) / n


def _row(name: str, n: int, figures: tuple[float, float, float], goal: bool = True) -> str:
    one, many, fixed = figures
    verdict = ("meets" if fixed <= GOAL_S else "misses") + f" <= {GOAL_S:.0f} s" if goal else ""
    return f"| {name} | {one:.2f} | {n} | {many:.2f} | **{fixed:.2f}** | {verdict} |"


def _loss_rows(case: tuple[str, Any, Path, Path | None, dict[str, Any]], work: Path) -> list[str]:
    from worker import input_files, lookup

    name, model, loc, acc, analysis = case
    work.mkdir(parents=True, exist_ok=True)
    settings_path = work / "analysis_settings.json"
    settings_path.write_text(json.dumps(analysis), encoding="utf-8")
    options = lookup.generate_options(
        model, location_file=loc, accounts_file=acc, settings_file=settings_path
    )
    chunk = lookup.prepare_keys_chunk(
        model=model,
        options=options,
        location_file=loc,
        chunk_index=1,
        num_chunks=1,
        out_dir=work / "k",
    )
    keys, errors = lookup.collect_keys(
        options=options, location_file=loc, chunk_outputs=[chunk], out_dir=work / "keys"
    )
    inputs = work / "inputs"
    input_files.write_input_files(
        options=options, keys_file=keys, errors_file=errors, input_dir=inputs
    )

    def measure(n: int) -> float:
        return _loss_chunks(model, inputs, analysis, n, work)

    rows = []
    fixed = _with_pipeline("inprocess", lambda: _fixed_cost(measure, LOSS_CHUNKS))
    rows.append(_row(f"{name}, in-process pipeline", LOSS_CHUNKS, fixed))
    fixed = _with_pipeline("bash", lambda: _fixed_cost(measure, BASH_LOSS_CHUNKS))
    rows.append(_row(f"{name}, oasislmf bash pipeline", BASH_LOSS_CHUNKS, fixed))
    return rows


def _lookup_row(name: str, model: Any, loc: Path, work: Path) -> str:
    from worker import lookup

    # the model's own analysis settings: oasislmf validates them while loading the options
    settings_path = model.root / "analysis_settings.json"
    options = lookup.generate_options(
        model, location_file=loc, accounts_file=None, settings_file=settings_path
    )

    def measure(n: int) -> float:
        return _lookup_chunks(model, options, loc, n, work)

    return _row(name, LOOKUP_CHUNKS, _fixed_cost(measure, LOOKUP_CHUNKS), goal=False)


def _with_pipeline(mode: str, fn: Callable[[], Any]) -> Any:
    from worker.pipeline import PIPELINE_ENV

    old = os.environ.get(PIPELINE_ENV)
    os.environ[PIPELINE_ENV] = mode
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop(PIPELINE_ENV, None)
        else:
            os.environ[PIPELINE_ENV] = old


def run(settings: Settings) -> str:
    from worker.oasis_env import prepare_process

    prepare_process()
    import json

    from oasis_keda.core.model_dir import read_model_dir
    from oasis_keda.runtime.synth import write_synthetic_model

    rows_loss: list[str] = []
    rows_lookup: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as tmp:
        work = Path(tmp)
        synth = write_synthetic_model(work / "synth", locations=200, events=500)
        cases: list[tuple[str, Any, Path, Path | None, dict[str, Any]]] = [
            (
                "synthetic (200 locations, 500 events)",
                synth,
                synth.root / "location.csv",
                synth.root / "account.csv",
                json.loads((synth.root / "analysis_settings.json").read_text()),
            ),
        ]
        if PIWIND.exists():
            pw_settings = json.loads((PIWIND / "analysis_settings.json").read_text())
            for key in ("ri_output", "ri_summaries"):
                pw_settings.pop(key, None)
            pw_settings["number_of_samples"] = 10
            inputs_dir = PIWIND / "tests" / "inputs"
            cases.append(
                (
                    "PiWind (10 locations, 1,447 events)",
                    read_model_dir(PIWIND),
                    inputs_dir / "SourceLocOEDPiWind10.csv",
                    inputs_dir / "SourceAccOEDPiWind.csv",
                    pw_settings,
                )
            )
        for i, case in enumerate(cases):
            rows_loss.extend(_loss_rows(case, work / f"case{i}"))
        lookup_cases = [("synthetic (200 locations)", synth, synth.root / "location.csv")]
        if PIWIND.exists():
            lookup_cases.append(
                (
                    "PiWind (12,599 locations)",
                    read_model_dir(PIWIND),
                    PIWIND / "tests" / "inputs" / "SourceLocOEDPiWind.csv",
                )
            )
        for name, model, loc in lookup_cases:
            rows_lookup.append(_lookup_row(name, model, loc, work))
    head = (
        "| case | unchunked (s) | N | N chunks (s) | fixed cost per chunk (s) | goal |\n"
        "|---|---|---|---|---|---|"
    )
    return "\n".join(
        [
            "## Fixed cost of a chunk (oasislmf)",
            "",
            (
                "Fixed cost per chunk = (N chunks run one after another - unchunked run) / N, "
                f"median of {REPEATS} after a warm-up (warm numba cache), stage functions "
                "called in one long-lived process as a worker does. Loss figures count the "
                "chunks only (run preparation and the output step are once per analysis). "
                "oasislmf's own CLI pays about 9 s per chunk here (a fresh "
                "`import oasislmf` of about 4.4 s plus a process per pipeline tool); the bash "
                "rows show the second part alone."
            ),
            "",
            "Command: `python -m bench bench_chunks` (or `make bench`).",
            "",
            "### Loss chunks",
            "",
            head,
            *rows_loss,
            "",
            "### Lookup chunks",
            "",
            head,
            *rows_lookup,
            "",
        ]
    )


if __name__ == "__main__":
    print(run(Settings.from_env(os.environ)))
