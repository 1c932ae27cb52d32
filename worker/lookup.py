"""Input generation for one chunk: the key lookup over a slice of the location file.

Oasis's distributed workers load and validate the whole location file in every lookup
chunk. Here chunk k parses and looks up only its own rows. The one thing it needs from the
other rows is oasislmf's ``loc_id``: it numbers the sorted (PortNumber, AccNumber,
LocNumber) of the *whole* file, and the input files step joins keys to locations on it. So a
chunk reads those three id columns of every row (cheap: no validation, no lookup), numbers
them exactly as oasislmf does, and hands its slice to the lookup with ``loc_id`` already set
(oasislmf keeps a ``loc_id`` it finds). Chunk outputs are then final, and
:func:`collect_keys` only concatenates and sorts them, so any number of chunks gives the
same bytes as one.

Every function writes under a temporary name and renames, so a re-run chunk replaces its
output whole and never leaves half a file.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from oasis_keda.model_dir import ModelDir
from worker.errors import InputError

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
KEYS_NAME = "keys.csv"
KEYS_ERRORS_NAME = "keys-errors.csv"
CHUNK_META_NAME = "chunk.json"
DEFAULT_KEYS_HEADER = ("LocID", "PerilID", "CoverageTypeID", "AreaPerilID", "VulnerabilityID")
DEFAULT_ERRORS_HEADER = ("LocID", "PerilID", "CoverageTypeID", "Status", "Message")


@contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """A fresh sibling directory that replaces ``final`` when the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read_header(location_file: Path) -> list[str]:
    try:
        with location_file.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError as exc:
        raise InputError(f"location file {location_file} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"location file {location_file} is unreadable: {exc}") from exc
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
    try:
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
    header = _read_header(location_file)
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


def chunk_bounds(total: int, chunk_index: int, num_chunks: int) -> tuple[int, int]:
    """Rows [start, end) of chunk k of N, sized like ``numpy.array_split``."""
    if num_chunks < 1 or not 1 <= chunk_index <= num_chunks:
        raise ValueError(f"chunk {chunk_index} of {num_chunks} is out of range")
    base, extra = divmod(total, num_chunks)
    k = chunk_index - 1
    start = k * base + min(k, extra)
    return start, start + base + (1 if k < extra else 0)


def _global_loc_ids(location_file: Path, header: Sequence[str]) -> list[int]:
    """oasislmf's ``loc_id`` for every row: sorted-key enumeration of the id columns."""
    from oasislmf.utils.data import get_ids

    ids = _read_columns(location_file, _column_map(location_file, header, LOCATION_ID_COLUMNS))
    return [int(i) for i in get_ids(ids, list(LOCATION_ID_COLUMNS))]


def _write_slice(location_file: Path, start: int, end: int, dest: Path) -> None:
    """Rows [start, end), values kept as text so that oasislmf parses them as from the file."""
    df = pd.read_csv(
        location_file,
        skiprows=range(1, start + 1),
        nrows=end - start,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        encoding="utf-8-sig",
    )
    df.to_csv(dest, index=False)


def _load_exposure(location_csv: Path, source: Path, loc_ids: Sequence[int]) -> Any:
    """The slice as oasislmf loads it for the lookup, with the whole file's ``loc_id``."""
    from oasislmf.utils.data import DEFAULT_ADDITIONAL_FIELDS, SAR_ID, prepare_oed_exposure
    from ods_tools.oed import OedExposure

    try:
        exposure = OedExposure(
            location=str(location_csv),
            check_oed=True,
            use_field=True,
            additional_fields=DEFAULT_ADDITIONAL_FIELDS,
            backend_dtype="pd_dtype",
        )
        # set before oasislmf numbers the slice on its own (it keeps an existing loc_id)
        exposure.get_subject_at_risk_source().dataframe[SAR_ID] = list(loc_ids)
        prepare_oed_exposure(exposure)
    except Exception as exc:  # ods_tools raises many kinds; all mean bad exposure
        raise InputError(f"location file {source}: {exc}") from exc
    return exposure


def _write_empty_keys(directory: Path) -> None:
    (directory / KEYS_NAME).write_text(",".join(DEFAULT_KEYS_HEADER) + "\n", encoding="utf-8")
    (directory / KEYS_ERRORS_NAME).write_text(
        ",".join(DEFAULT_ERRORS_HEADER) + "\n", encoding="utf-8"
    )


# (lookup config, keys data dir, config mtime) -> (key server, lookup instance)
_LOOKUPS: dict[tuple[str, str, float], tuple[Any, Any]] = {}


def _lookup_for(model: ModelDir) -> tuple[Any, Any]:
    """The model's key server and built-in lookup, built once per process.

    Keeping them saves reloading keys data per chunk, and is needed besides: a lookup's
    numba-compiled grid functions are closures, and numba's cache fails ("underlying object
    has vanished") once the first lookup instance of a process is garbage collected.
    """
    from oasislmf.lookup.factory import KeyServerFactory

    key = (
        str(model.lookup_config_json),
        str(model.lookup_data_dir),
        model.lookup_config_json.stat().st_mtime,
    )
    if key not in _LOOKUPS:
        scratch = tempfile.mkdtemp(prefix="oasis-keda-lookup-")
        _, key_server = KeyServerFactory.create(
            lookup_config_fp=str(model.lookup_config_json),
            model_keys_data_path=str(model.lookup_data_dir),
            output_directory=scratch,
        )
        lookup = key_server.create_lookup(
            key_server.lookup_cls,
            key_server.config,
            key_server.config_dir,
            key_server.user_data_dir,
            key_server.output_dir,
            lookup_id=None,
        )
        _LOOKUPS[key] = (key_server, lookup)
    return _LOOKUPS[key]


def run_lookup(*, model: ModelDir, location_df: pd.DataFrame, out_dir: Path, source: Path) -> None:
    """The model's built-in lookup over ``location_df``: keys.csv and keys-errors.csv.

    The same calls as oasislmf's single-process ``generate_key_files``, on a kept lookup.
    """
    from oasislmf.utils.exceptions import OasisException

    try:
        key_server, lookup = _lookup_for(model)
        results = lookup.process_locations(location_df)
        if not isinstance(results, pd.DataFrame):
            results = pd.DataFrame(list(results))
        key_server.write_keys_file(
            iter([results]),
            successes_fp=str(out_dir / KEYS_NAME),
            errors_fp=str(out_dir / KEYS_ERRORS_NAME),
            output_format="oasis",
            keys_success_msg=False,
        )
    except OasisException as exc:
        # the lookup config is the model's; a failure on a checked file is about the rows
        raise InputError(f"lookup of {source} failed: {exc}") from exc


def prepare_keys_chunk(
    *,
    model: ModelDir,
    location_file: Path,
    chunk_index: int,
    num_chunks: int,
    out_dir: Path,
) -> Path:
    """Look up rows of chunk k of N; return the chunk's directory (keys.csv, keys-errors.csv)."""
    location_file = Path(location_file)
    header = _read_header(location_file)
    loc_ids = _global_loc_ids(location_file, header)
    start, end = chunk_bounds(len(loc_ids), chunk_index, num_chunks)
    final = Path(out_dir) / f"keys-chunk-{chunk_index}-of-{num_chunks}"
    with staging_dir(final) as tmp:
        meta = {
            "location_file": str(location_file),
            "chunk_index": chunk_index,
            "num_chunks": num_chunks,
            "rows": [start, end],
        }
        if start == end:
            _write_empty_keys(tmp)
        else:
            slice_csv = tmp / "location-slice.csv"
            _write_slice(location_file, start, end, slice_csv)
            exposure = _load_exposure(slice_csv, location_file, loc_ids[start:end])
            slice_csv.unlink()
            location_df = exposure.get_subject_at_risk_source().dataframe
            run_lookup(model=model, location_df=location_df, out_dir=tmp, source=location_file)
            for name in (KEYS_NAME, KEYS_ERRORS_NAME):
                if not (tmp / name).exists():
                    raise InputError(f"lookup of {location_file} wrote no {name}")
        (tmp / CHUNK_META_NAME).write_text(json.dumps(meta) + "\n", encoding="utf-8")
    logger.info(
        "keys chunk %d of %d: rows %d-%d of %s", chunk_index, num_chunks, start, end, location_file
    )
    return final


def _read_keys(path: Path) -> pd.DataFrame | None:
    """A keys file as text columns, or None when it is empty (no successes: no header)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    return df


def _merge(frames: list[pd.DataFrame | None], default_header: Sequence[str]) -> pd.DataFrame:
    present = [f for f in frames if f is not None]
    if not present:
        return pd.DataFrame(columns=list(default_header))
    header = list(present[0].columns)
    for f in present[1:]:
        if list(f.columns) != header:
            raise InputError(f"keys chunks disagree on columns: {header} vs {list(f.columns)}")
    df = pd.concat(present, ignore_index=True)
    if df.empty:
        return df
    # a total order that does not depend on how rows were split into chunks
    order = df.assign(
        _loc=pd.to_numeric(df.iloc[:, 0], errors="coerce"),
        _cov=pd.to_numeric(df.iloc[:, 2], errors="coerce"),
    )
    order = order.sort_values(["_loc", header[1], "_cov"], kind="stable")
    return df.loc[order.index]


def collect_keys(*, chunk_outputs: Sequence[Path], out_dir: Path) -> Path:
    """Merge chunk keys (in chunk order, then sorted by location, peril, coverage).

    Writes ``out_dir/keys.csv`` and ``out_dir/keys-errors.csv``; returns the keys path.
    """
    if not chunk_outputs:
        raise ValueError("collect_keys needs at least one chunk output")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, default in (
        (KEYS_NAME, DEFAULT_KEYS_HEADER),
        (KEYS_ERRORS_NAME, DEFAULT_ERRORS_HEADER),
    ):
        frames = [_read_keys(Path(chunk) / name) for chunk in chunk_outputs]
        merged = _merge(frames, default)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        os.close(fd)
        try:
            merged.to_csv(tmp_name, index=False, lineterminator="\n")
            os.replace(tmp_name, out_dir / name)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    return out_dir / KEYS_NAME


def write_input_files(
    *,
    model: ModelDir,
    location_file: Path,
    accounts_file: Path | None,
    keys_file: Path,
    analysis_settings: dict[str, Any],
    input_dir: Path,
) -> None:
    """oasislmf's input files (GUL, and FM when there are accounts) from exposure and keys."""
    from oasislmf.manager import OasisManager
    from oasislmf.utils.exceptions import OasisException

    from worker.losses import model_options

    keys_file = Path(keys_file)
    errors_file = keys_file.parent / KEYS_ERRORS_NAME
    with staging_dir(Path(input_dir)) as tmp:
        settings_file = tmp.parent / f".{tmp.name}.analysis_settings.json"
        settings_file.write_text(json.dumps(analysis_settings), encoding="utf-8")
        try:
            OasisManager().generate_files(
                **model_options(model),
                oasis_files_dir=str(tmp),
                oed_location_csv=str(location_file),
                oed_accounts_csv=str(accounts_file) if accounts_file else None,
                keys_data_path=str(keys_file),
                keys_errors_path=str(errors_file) if errors_file.exists() else None,
                lookup_config_json=str(model.lookup_config_json),
                model_settings_json=str(model.model_settings_json),
                analysis_settings_json=str(settings_file),
            )
        except OasisException as exc:
            raise InputError(
                f"input files from {location_file}"
                f"{' and ' + str(accounts_file) if accounts_file else ''}: {exc}"
            ) from exc
        finally:
            settings_file.unlink(missing_ok=True)
    logger.info("input files written to %s", input_dir)
