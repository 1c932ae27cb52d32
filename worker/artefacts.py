"""The files an analysis serves beside its inputs and outputs, made ready for the records
when a stage finishes.

Input generation: the keys and keys-errors files (as CSV, whatever the model's
``keys_format``), and the two reports oasislmf's input-file step writes with the input
files: the exposure summary (``exposure_summary_report.json``, served as the lookup
validation) and the OED fields each summary level may group by
(``exposure_summary_levels.json``, which the Oasis UI reads to offer output options).
Losses: the run log, one text file: the warnings of the perspectives the run dropped,
then every non-empty log oasislmf's tools wrote in the run's log folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: Analysis record field -> the name oasislmf gives the report in the input folder.
INPUT_REPORTS = {
    "lookup_validation_file_id": "exposure_summary_report.json",
    "summary_levels_file_id": "exposure_summary_levels.json",
}
RUN_LOG_DIR = "log"
WARNINGS_LOG = "warnings.log"


def as_csv(path: Path) -> Path | None:
    """``path`` itself if it is CSV, else a CSV copy beside it (parquet keys); None for a
    format this cannot read."""
    import pandas as pd  # type: ignore[import-untyped]

    if path.suffix == ".csv":
        return path
    target = path.with_suffix(".csv")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        logger.warning("%s: no CSV copy made of a %s file", path, path.suffix)
        return None
    partial = target.with_name(f".{target.name}.partial")
    frame.to_csv(partial, index=False)
    os.replace(partial, target)
    return target


def keys_as_csv(keys_file: Path, errors_file: Path) -> None:
    """The CSV copies of the keys files, made ahead (beside the FM input files) so that
    the stage's last step finds them."""
    for path in (keys_file, errors_file):
        if path.is_file():
            as_csv(path)


def input_files(keys_file: Path, errors_file: Path, input_dir: Path) -> dict[str, str]:
    """Analysis file fields -> files, for what input generation made."""
    files: dict[str, str] = {}
    for field, path in (
        ("lookup_success_file_id", keys_file),
        ("lookup_errors_file_id", errors_file),
    ):
        made = path.with_suffix(".csv")
        csv = made if made.is_file() else as_csv(path) if path.is_file() else None
        if csv is not None:
            files[field] = str(csv)
    for field, name in INPUT_REPORTS.items():
        report = input_dir / name
        if report.is_file():
            files[field] = str(report)
    return files


def write_warnings(run_dir: Path, warnings: list[str]) -> None:
    """Keep a run's warnings in its log folder, which becomes the run log."""
    if not warnings:
        return
    log_dir = run_dir / RUN_LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / WARNINGS_LOG).write_text("".join(f"WARNING: {w}\n" for w in warnings), "utf-8")


def run_log(run_dir: Path, target: Path) -> Path:
    """The run's log folder as one text file (a header line per log file, empty files only
    counted), written atomically."""
    log_dir = run_dir / RUN_LOG_DIR
    paths = sorted(p for p in log_dir.rglob("*") if p.is_file()) if log_dir.is_dir() else []
    warnings = log_dir / WARNINGS_LOG
    if warnings in paths:  # first: what the user most needs to see
        paths.remove(warnings)
        paths.insert(0, warnings)
    empty = 0
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", encoding="utf-8") as out:
        for path in paths:
            text = path.read_text(encoding="utf-8", errors="replace")
            if not text.strip():
                empty += 1
                continue
            out.write(f"== {path.relative_to(run_dir)}\n{text.rstrip()}\n\n")
        out.write(f"== {len(paths)} log files, {empty} of them empty\n")
    partial.replace(target)
    return target
