"""Input generation: the key lookup in chunks, the keys merged, the input files written.

oasislmf's own lookup loads and validates the whole location file once and looks it up in
partitions (see :mod:`worker.keys_order`). Chunk k here loads only the rows of its
partitions, numbered and indexed as in the whole file (:mod:`worker.exposure`), and looks
them up with the model's lookup built exactly as oasislmf builds it. :func:`collect_keys`
puts the chunks' results back in oasislmf's order and writes the keys files with
oasislmf's own writer, and :mod:`worker.input_files` runs oasislmf's input-file step on
them with the model's run options: the input files are those of ``oasislmf model run``.

Every function writes under a temporary name and renames, so a re-run chunk replaces its
output whole and never leaves half a file.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from oasis_keda.core.model_dir import ModelDir
from worker import exposure, keys_order
from worker.errors import InputError, TransientError
from worker.run_options import RunOptions, load_run_options
from worker.staging import staging_dir

logger = logging.getLogger(__name__)

CHUNK_META_NAME = "chunk.json"


def keys_names(options: RunOptions) -> tuple[str, str]:
    """oasislmf's names of the keys and keys-errors files for the configured format."""
    fmt = str(options.arguments.get("keys_format") or "parquet").lower()
    suffix = "csv" if fmt == "oasis" else fmt
    return f"keys.{suffix}", f"keys-errors.{suffix}"


def generate_options(
    model: ModelDir,
    *,
    location_file: Path,
    accounts_file: Path | None,
    settings_file: Path,
    ri_info_file: Path | None = None,
    ri_scope_file: Path | None = None,
    currency_conversion_json: Path | None = None,
    reporting_currency: str | None = None,
) -> RunOptions:
    """The model's run options for input generation over these files. The reinsurance
    files are given to oasislmf only with the accounts file and each other, as oasislmf
    makes reinsurance input files only when all three are present. Currency conversion
    settings and a reporting currency, when the portfolio has them, go to oasislmf's
    exposure loader as they would on its command line."""
    currency: dict[str, str] = {}
    if currency_conversion_json is not None:
        currency["currency_conversion_json"] = str(currency_conversion_json)
    if reporting_currency:
        currency["reporting_currency"] = reporting_currency
    with_ri = bool(accounts_file and ri_info_file and ri_scope_file)
    return load_run_options(
        model.config_path,
        overrides={
            "oed_location_csv": str(exposure.named_by_format(location_file)),
            "oed_accounts_csv": str(exposure.named_by_format(accounts_file))
            if accounts_file
            else "",
            "oed_info_csv": str(exposure.named_by_format(ri_info_file))
            if with_ri and ri_info_file
            else "",
            "oed_scope_csv": str(exposure.named_by_format(ri_scope_file))
            if with_ri and ri_scope_file
            else "",
            "analysis_settings_json": str(settings_file),
            **currency,
        },
    )


# fingerprint of the lookup's files -> (key server, lookup instance)
_LOOKUPS: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _fingerprint(options: RunOptions) -> tuple[Any, ...]:
    """What the lookup is built from: its config and the files of its data directory."""
    args = options.arguments
    names = (
        "lookup_config_json",
        "lookup_data_dir",
        "lookup_module_path",
        "model_version_csv",
        "lookup_complex_config_json",
        "user_data_dir",
    )
    stamp: list[Any] = []
    for name in names:
        value = args.get(name)
        stamp.append((name, value))
        if not value or not os.path.exists(value):
            continue
        paths = [Path(value)] if os.path.isfile(value) else sorted(Path(value).rglob("*"))
        for path in paths:
            if path.is_file():
                st = path.stat()
                stamp.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def _lookup_for(options: RunOptions) -> tuple[Any, Any]:
    """The model's key server and lookup, built as oasislmf's keys step builds them, once
    per process and again whenever one of their files changes.

    Keeping them saves reloading keys data per chunk, and is needed besides: a lookup's
    numba-compiled grid functions are closures, and numba's cache fails ("underlying object
    has vanished") once the first lookup instance of a process is garbage collected.
    """
    from oasislmf.lookup.factory import KeyServerFactory

    key = _fingerprint(options)
    if key not in _LOOKUPS:
        args = options.arguments
        scratch = tempfile.mkdtemp(prefix="oasis-keda-lookup-")
        _, key_server = KeyServerFactory.create(
            lookup_config_fp=args.get("lookup_config_json"),
            model_keys_data_path=args.get("lookup_data_dir"),
            model_version_file_path=args.get("model_version_csv"),
            lookup_module_path=args.get("lookup_module_path"),
            complex_lookup_config_fp=args.get("lookup_complex_config_json"),
            user_data_dir=args.get("user_data_dir"),
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


def partition_count(options: RunOptions, rows: int) -> int:
    """How many partitions oasislmf's own lookup splits ``rows`` locations into."""
    from oasislmf.utils.parallel import resolve_partition_count

    key_server, _ = _lookup_for(options)
    args = options.arguments
    multiproc = args.get("lookup_multiprocessing")
    if multiproc is False or not hasattr(key_server.lookup_cls, "process_locations_multiproc"):
        return 1
    pool, parts = resolve_partition_count(
        rows,
        int(args.get("lookup_num_processes") or -1),
        int(args.get("lookup_num_chunks") or -1),
        key_server.min_bloc_size,
        key_server.max_bloc_size,
    )
    return 1 if pool <= 1 else int(parts)


def _lookup_rows(
    options: RunOptions, location_file: Path, loc_ids: Any, wanted: Any
) -> pd.DataFrame:
    """Raw lookup results (status and message included) for the rows whose ``loc_id`` is
    in ``wanted``, as oasislmf's lookup returns them for that set of rows."""
    from oasislmf.utils.exceptions import OasisException

    positions = np.flatnonzero(np.isin(loc_ids, wanted))
    if positions.size == 0:
        return pd.DataFrame()
    with tempfile.TemporaryDirectory(prefix="oasis-keda-rows-") as tmp:
        rows_csv = Path(tmp) / exposure.rows_name(location_file)
        exposure.write_rows(location_file, positions, rows_csv)
        frame = exposure.load_rows(
            options,
            rows_csv=rows_csv,
            source=location_file,
            loc_ids=loc_ids[positions],
            positions=positions,
        )
    _, lookup = _lookup_for(options)
    try:
        results = lookup.process_locations(frame)
    except OasisException as exc:
        # the lookup config is the model's; a failure on a checked file is about the rows
        raise InputError(f"lookup of {location_file} failed: {exc}") from exc
    if isinstance(results, pd.DataFrame):
        return results
    if isinstance(results, types.GeneratorType):
        return pd.DataFrame.from_records(results)
    return pd.DataFrame(list(results))


def prepare_keys_chunk(
    *,
    model: ModelDir,
    options: RunOptions,
    location_file: Path,
    chunk_index: int,
    num_chunks: int,
    out_dir: Path,
) -> Path:
    """Look up the rows of chunk k of N; return the chunk's directory of results."""
    location_file = Path(location_file)
    loc_ids = exposure.global_loc_ids(location_file)
    partitions = partition_count(options, len(loc_ids))
    unique = np.unique(loc_ids)
    pieces = keys_order.chunk_pieces(partitions, chunk_index, num_chunks)
    final = Path(out_dir) / f"keys-chunk-{chunk_index}-of-{num_chunks}"
    with staging_dir(final) as tmp:
        for piece in pieces:
            wanted = keys_order.piece_loc_ids(unique, partitions, piece)
            results = _lookup_rows(options, location_file, loc_ids, wanted)
            with (tmp / f"{piece.name}.pkl").open("wb") as fh:
                pickle.dump(results, fh, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "location_file": str(location_file),
            "chunk_index": chunk_index,
            "num_chunks": num_chunks,
            "rows": len(loc_ids),
            "partitions": partitions,
            "pieces": [piece.name for piece in pieces],
        }
        (tmp / CHUNK_META_NAME).write_text(json.dumps(meta) + "\n", encoding="utf-8")
    logger.info(
        "keys chunk %d of %d: %s of %d oasislmf partition(s) of %s",
        chunk_index,
        num_chunks,
        ", ".join(p.name for p in pieces),
        partitions,
        location_file,
    )
    return final


def _read_chunks(chunk_outputs: Sequence[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    metas = []
    files: dict[str, Path] = {}
    for chunk in chunk_outputs:
        try:
            meta = json.loads((Path(chunk) / CHUNK_META_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TransientError(f"keys chunk {chunk} is incomplete: {exc}") from exc
        metas.append(meta)
        for name in meta["pieces"]:
            files[name] = Path(chunk) / f"{name}.pkl"
    first = metas[0]
    for meta in metas[1:]:
        if (meta["rows"], meta["partitions"]) != (first["rows"], first["partitions"]):
            raise InputError(
                "lookup chunks disagree on oasislmf's partitions of the location file "
                f"({first['partitions']} vs {meta['partitions']}): they ran on machines with "
                "different core counts; set lookup_num_processes in the model config"
            )
    return first, files


def _partition_results(
    partition: int, total: int, files: dict[str, Path], context: tuple[Any, ...]
) -> list[pd.DataFrame]:
    """One partition's results as oasislmf's one lookup call over it would order them."""
    names = sorted(
        (n for n in files if n.startswith(f"p{partition}-")), key=lambda n: int(n.split("-")[1])
    )
    frames = []
    for name in names:
        with files[name].open("rb") as fh:
            frames.append(pickle.load(fh))
    present = [f for f in frames if not f.empty]
    if len(present) <= 1:
        return present
    options, location_file, loc_ids, unique, position = context
    merged = keys_order.merge_pieces(present, position)
    if merged is not None:
        return merged
    logger.warning(
        "partition %d of %d: the lookup's order of results could not be shown from its "
        "pieces; looking the partition up again whole",
        partition + 1,
        total,
    )
    wanted = np.array_split(unique, total)[partition]
    return [_lookup_rows(options, location_file, loc_ids, wanted)]


def collect_keys(
    *, options: RunOptions, location_file: Path, chunk_outputs: Sequence[Path], out_dir: Path
) -> tuple[Path, Path]:
    """Merge the chunks' results and write the keys and keys-errors files as oasislmf's
    lookup does; return their paths."""
    if not chunk_outputs:
        raise ValueError("collect_keys needs at least one chunk output")
    meta, files = _read_chunks(chunk_outputs)
    loc_ids = exposure.global_loc_ids(Path(location_file))
    position = pd.Series(np.arange(len(loc_ids)), index=loc_ids)
    context = (options, Path(location_file), loc_ids, np.unique(loc_ids), position)
    total = int(meta["partitions"])
    results: list[pd.DataFrame] = []
    for partition in range(total):
        results.extend(_partition_results(partition, total, files, context))
    key_server, _ = _lookup_for(options)
    keys_name, errors_name = keys_names(options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".keys.", dir=out_dir) as tmp:
        keys_tmp, errors_tmp = Path(tmp) / keys_name, Path(tmp) / errors_name
        key_server.write_keys_file(
            iter(results),
            successes_fp=str(keys_tmp),
            errors_fp=str(errors_tmp),
            output_format=options.arguments.get("keys_format") or "parquet",
            keys_success_msg=bool(options.arguments.get("lookup_complex_config_json")),
        )
        os.replace(keys_tmp, out_dir / keys_name)
        os.replace(errors_tmp, out_dir / errors_name)
    return out_dir / keys_name, out_dir / errors_name
