"""Helpers for the oasislmf stage tests: run the stages in-process, compare output trees."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oasis_keda.core.model_dir import ModelDir, read_model_dir
from tests.shared_data import PIWIND
from worker import input_files, lookup, losses
from worker.run_options import RunOptions

PIWIND_10 = PIWIND / "tests" / "inputs" / "SourceLocOEDPiWind10.csv"
PIWIND_FULL = PIWIND / "tests" / "inputs" / "SourceLocOEDPiWind.csv"
PIWIND_ACC = PIWIND / "tests" / "inputs" / "SourceAccOEDPiWind.csv"
PIWIND_RI_INFO = PIWIND / "tests" / "inputs" / "SourceReinsInfoOEDPiWind.csv"
PIWIND_RI_SCOPE = PIWIND / "tests" / "inputs" / "SourceReinsScopeOEDPiWind.csv"


def piwind() -> ModelDir:
    return read_model_dir(PIWIND)


def piwind_settings(samples: int = 10, *, ri: bool = False) -> dict[str, Any]:
    """PiWind's analysis settings, samples explicit; without reinsurance unless ``ri``."""
    settings = json.loads((PIWIND / "analysis_settings.json").read_text(encoding="utf-8"))
    for key in () if ri else ("ri_output", "ri_summaries"):
        settings.pop(key, None)
    settings["number_of_samples"] = samples
    return settings


def model_settings(model: ModelDir) -> dict[str, Any]:
    return json.loads((model.root / "analysis_settings.json").read_text(encoding="utf-8"))


def settings_file(settings: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "analysis_settings.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


def run_keys(
    model: ModelDir,
    location_file: Path,
    n: int,
    out: Path,
    *,
    accounts_file: Path | None = None,
    settings: dict[str, Any] | None = None,
    ri_files: tuple[Path, Path] | None = None,
) -> tuple[Path, Path]:
    """Chunked lookup of ``location_file`` in ``n`` chunks: the keys and keys-errors files."""
    options = lookup.generate_options(
        model,
        location_file=location_file,
        accounts_file=accounts_file,
        settings_file=settings_file(settings or model_settings(model), out),
        ri_info_file=ri_files[0] if ri_files else None,
        ri_scope_file=ri_files[1] if ri_files else None,
    )
    chunks = [
        lookup.prepare_keys_chunk(
            model=model,
            options=options,
            location_file=location_file,
            chunk_index=k,
            num_chunks=n,
            out_dir=out / "chunks",
        )
        for k in range(1, n + 1)
    ]
    return lookup.collect_keys(
        options=options, location_file=location_file, chunk_outputs=chunks, out_dir=out / "keys"
    )


def run_inputs(
    model: ModelDir,
    location_file: Path,
    accounts_file: Path | None,
    settings: dict[str, Any],
    out: Path,
    lookup_chunks: int = 1,
    ri_files: tuple[Path, Path] | None = None,
) -> Path:
    """The chunked input stage: lookup in ``lookup_chunks`` chunks, then the input files
    (with reinsurance input files when ``ri_files``, info and scope, are given)."""
    keys, errors = run_keys(
        model,
        location_file,
        lookup_chunks,
        out,
        accounts_file=accounts_file,
        settings=settings,
        ri_files=ri_files,
    )
    options = lookup.generate_options(
        model,
        location_file=location_file,
        accounts_file=accounts_file,
        settings_file=settings_file(settings, out),
        ri_info_file=ri_files[0] if ri_files else None,
        ri_scope_file=ri_files[1] if ri_files else None,
    )
    write_inputs(options, keys, errors, out / "input")
    return out / "input"


def write_inputs(options: RunOptions, keys: Path, errors: Path, input_dir: Path) -> None:
    """The input files as the stage writes them: the GUL and FM parts (the FM part only
    with accounts), then merged."""
    parts: list[input_files.Part] = ["gul"]
    if options.arguments.get("oed_accounts_csv"):
        parts.append("fm")
    for part in parts:
        input_files.write_input_files(
            options=options,
            keys_file=keys,
            errors_file=errors,
            input_dir=input_files.part_dir(input_dir, part),
            part=part,
        )
    input_files.merge_parts([input_files.part_dir(input_dir, p) for p in parts], input_dir)


def run_losses(
    model: ModelDir,
    input_dir: Path,
    settings: dict[str, Any],
    n: int,
    out: Path,
    order: Sequence[int] | None = None,
) -> Path:
    run_dir = out / "run"
    losses.prepare_losses_dir(
        model=model, input_dir=input_dir, analysis_settings=settings, run_dir=run_dir
    )
    for k in order or range(1, n + 1):
        losses.run_loss_chunk(model=model, run_dir=run_dir, chunk_index=k, num_chunks=n)
    losses.generate_losses_output(
        model=model, run_dir=run_dir, num_chunks=n, output_dir=out / "output"
    )
    return out / "output"


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def assert_same_outputs(got: Path, want: Path) -> None:
    """Every file present in both, byte-identical or identical after sorting rows (no
    tolerance: the merged summary streams make EPT/PSEPT sums exact, worker.summary_streams)."""
    a, b = tree(got), tree(want)
    assert sorted(a) == sorted(b)
    assert a, f"no files in {want}"
    for name in b:
        if a[name] == b[name]:
            continue
        lines_a, lines_b = a[name].splitlines(), b[name].splitlines()
        assert lines_a[:1] == lines_b[:1], f"{name}: headers differ"
        assert sorted(lines_a[1:]) == sorted(lines_b[1:]), f"{name} differs"


def summary_streams(work: Path) -> dict[str, bytes]:
    """The summary streams (and .idx) of a work folder, kat inputs aside."""
    return {
        name: data
        for name, data in tree(work).items()
        if not name.startswith("kat/") and name.endswith((".bin", ".idx"))
    }
