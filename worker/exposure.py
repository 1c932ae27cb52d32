"""The location file as the lookup sees it: counted, checked, numbered and sliced.

oasislmf numbers locations with ``loc_id``: the rank of each row's (PortNumber, AccNumber,
LocNumber) among the sorted distinct triples of the *whole* file. The lookup, the keys and
the input files all join on it. A lookup chunk reads those three columns of every row
(cheap: no validation, no lookup), numbers them as oasislmf does, and loads only its own
rows, with that ``loc_id`` and with the index they have in the whole file, through the very
exposure loader ``oasislmf model run`` uses. Each chunk's rows then look to the lookup
exactly as they do in oasislmf's own run.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from oasis_keda.core import exposure_files
from worker import csv_rows, file_memo
from worker.errors import InputError
from worker.run_options import RunOptions

logger = logging.getLogger(__name__)

# OED location columns that are required for property business ("R" in the OED spec).
REQUIRED_LOCATION_COLUMNS = (
    "PortNumber",
    "AccNumber",
    "LocNumber",
    "CountryCode",
    "LocPerilsCovered",
    "LocCurrency",
)
COORDINATE_COLUMNS = ("Latitude", "Longitude")
# Columns that number locations (oasislmf: class_of_business_info['subject_at_risk_id_fields']).
LOCATION_ID_COLUMNS = ("PortNumber", "AccNumber", "LocNumber")


def _is_parquet(location_file: Path) -> bool:
    """Parquet by content (the magic bytes), whatever the file is named; anything else is
    read as CSV, whose reader says what is wrong with it."""
    try:
        with location_file.open("rb") as fh:
            if fh.read(len(exposure_files.PARQUET_MAGIC)) != exposure_files.PARQUET_MAGIC:
                return False
        exposure_files.file_format(location_file)
    except FileNotFoundError as exc:
        raise InputError(f"location file {location_file} does not exist") from exc
    except (OSError, exposure_files.ExposureFileError) as exc:
        raise InputError(f"location file {location_file} {exc}") from exc
    return True


def named_by_format(path: Path) -> Path:
    """``path``, or a link to it named with its format's extension when its name says
    otherwise: oasislmf picks its reader by the extension (files stored before their names
    followed their content)."""
    try:
        fmt = exposure_files.file_format(path)
    except exposure_files.ExposureFileError as exc:
        raise InputError(f"exposure file {path} {exc}") from exc
    if path.suffix == f".{fmt}":
        return path
    link = path.with_name(f"{path.name}.{fmt}")
    if not link.exists():
        tmp = path.with_name(f".{link.name}.{os.getpid()}.partial")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.name)
        tmp.replace(link)
    return link


def read_header(location_file: Path) -> list[str]:
    if _is_parquet(location_file):
        try:
            return exposure_files.columns(location_file, exposure_files.PARQUET)
        except exposure_files.ExposureFileError as exc:
            raise InputError(f"location file {location_file} {exc}") from exc
    try:
        with location_file.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError as exc:
        raise InputError(f"location file {location_file} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"location file {location_file} is unreadable: {exc}") from exc
    except csv.Error as exc:  # e.g. a header cell longer than the csv module's field limit
        raise InputError(f"location file {location_file}: line 1 (the header): {exc}") from exc
    if not header or not any(h.strip() for h in header):
        raise InputError(f"location file {location_file} is empty (no header row)")
    return header


def _column_map(
    location_file: Path, header: Sequence[str], wanted: Sequence[str]
) -> dict[str, str]:
    """Canonical name -> name in the file (OED names are case-insensitive)."""
    by_lower = {h.strip().lower(): h for h in header}
    found = {name: by_lower[name.lower()] for name in wanted if name.lower() in by_lower}
    missing = [name for name in REQUIRED_LOCATION_COLUMNS if name in wanted and name not in found]
    if missing:
        raise InputError(
            f"location file {location_file} is missing required OED column(s): {', '.join(missing)}"
        )
    return found


def _read_columns(location_file: Path, columns: dict[str, str]) -> pd.DataFrame:
    """The columns as text: CSV cells as written; parquet numbers as oasislmf's exposure
    loader turns them into OED text (``str`` of the value)."""
    try:
        if _is_parquet(location_file):
            df = pd.read_parquet(location_file, columns=list(columns.values()))
            for name in df.columns:
                if pd.api.types.is_numeric_dtype(df[name].dtype):
                    df[name] = df[name].map(str, na_action="ignore")
                df[name] = df[name].astype(object)
        else:
            df = pd.read_csv(
                location_file, usecols=list(columns.values()), dtype=str, encoding="utf-8-sig"
            )
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"location file {location_file} is unreadable: {exc}") from exc
    return df.rename(columns={v: k for k, v in columns.items()})


def count_locations(location_file: Path) -> int:
    """Number of location rows, after checking what the planner and the lookup rely on.

    Raises :class:`InputError` for an empty file, a missing required OED column, or a
    non-numeric Latitude/Longitude (naming the row: data rows count from 1, the header is
    line 1 of the file).
    """
    location_file = Path(location_file)
    header = read_header(location_file)
    columns = _column_map(location_file, header, REQUIRED_LOCATION_COLUMNS + COORDINATE_COLUMNS)
    df = _read_columns(location_file, columns)
    if df.empty:
        raise InputError(f"location file {location_file} has a header but no location rows")
    for name in COORDINATE_COLUMNS:
        if name not in df.columns:
            continue
        raw = df[name]
        bad = raw.notna() & pd.to_numeric(raw, errors="coerce").isna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise InputError(
                f"location file {location_file}: row {i + 1} (line {i + 2}), column {name}: "
                f"{raw.iloc[i]!r} is not a number"
            )
    return len(df)


def global_loc_ids(location_file: Path) -> np.ndarray[Any, Any]:
    """oasislmf's ``loc_id`` of every row, in file order (read-only; read once per file
    version by this process)."""
    return file_memo.cached("loc-ids", Path(location_file), _number_rows)


def _number_rows(location_file: Path) -> np.ndarray[Any, Any]:
    from oasislmf.utils.data import get_ids

    header = read_header(location_file)
    ids = _read_columns(location_file, _column_map(location_file, header, LOCATION_ID_COLUMNS))
    loc_ids = np.asarray(get_ids(ids, list(LOCATION_ID_COLUMNS)), dtype=np.int64)
    loc_ids.flags.writeable = False
    return loc_ids


def rows_name(location_file: Path) -> str:
    """The name of a slice of the location file: its format's extension, which oasislmf
    reads it by."""
    return "location.parquet" if _is_parquet(location_file) else "location.csv"


def write_rows(location_file: Path, positions: np.ndarray[Any, Any], dest: Path) -> None:
    """The rows at ``positions`` (file order), in the file's own format (CSV rows as the
    very text of the file) so that oasislmf parses them as it would from the file itself."""
    if _is_parquet(location_file):
        pd.read_parquet(location_file).iloc[positions].to_parquet(dest, index=False)
        return
    rows = file_memo.cached("csv-rows", Path(location_file), csv_rows.CsvRows.read)
    if rows.count == len(global_loc_ids(location_file)):
        rows.write(positions, dest)
        return
    # rows the text scan cannot tell as pandas does (bare carriage returns, stray quotes)
    df = pd.read_csv(
        location_file,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        encoding="utf-8-sig",
    )
    df.iloc[positions].to_csv(dest, index=False)


def load_rows(
    options: RunOptions,
    *,
    rows_csv: Path,
    source: Path,
    loc_ids: np.ndarray[Any, Any],
    positions: np.ndarray[Any, Any],
) -> Any:
    """The rows as ``oasislmf model run`` loads the whole file for its lookup: its exposure
    loader and settings, then the whole file's ``loc_id`` and row index."""
    from oasislmf.computation.run.model import RunModel
    from oasislmf.utils.data import SAR_ID, get_exposure_data, prepare_oed_exposure

    file_memo.memoize_oed_schema()
    try:
        step = RunModel(
            **options.step_kwargs(
                oed_location_csv=str(rows_csv),
                oed_accounts_csv=None,
                oed_info_csv=None,
                oed_scope_csv=None,
                # holds no exposure config, so oasislmf loads the rows from the file
                oasis_files_dir=str(rows_csv.parent),
                model_run_dir=None,
            )
        )
        exposure = get_exposure_data(step, add_internal_col=False)
        frame = exposure.get_subject_at_risk_source().dataframe
        frame.index = pd.Index(positions)
        # set before oasislmf numbers the rows on its own (it keeps an existing loc_id)
        frame[SAR_ID] = loc_ids
        prepare_oed_exposure(exposure)
    except InputError:
        raise
    except Exception as exc:  # ods_tools and oasislmf raise many kinds; all mean bad exposure
        raise InputError(f"location file {source}: {exc}") from exc
    return exposure.get_subject_at_risk_source().dataframe
