"""OED exposure files (location, accounts, reinsurance info and scope): their format, told
by content, and their required columns.

A file is parquet when it starts and ends with parquet's magic bytes (``PAR1``), CSV when it
is text with a header row, whatever its name says; anything else is refused. oasislmf picks
its reader by the file's extension, so a stored exposure file is named after its format
(:func:`stored_name`). The required columns are those the OED schema (ods_tools) marks
required for property business; names compare case-insensitively, as OED's do.
"""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path, PurePath
from typing import Final

PARQUET: Final = "parquet"
CSV: Final = "csv"
PARQUET_MAGIC = b"PAR1"
#: Bytes read to tell text from binary, and to read a CSV header.
SNIFF_BYTES = 1 << 16

#: Kind of exposure file -> (OED file type in the schema, how messages name it).
KINDS: Final = {
    "location": ("Loc", "location file"),
    "accounts": ("Acc", "accounts file"),
    "ri_info": ("ReinsInfo", "reinsurance info file"),
    "ri_scope": ("ReinsScope", "reinsurance scope file"),
}
CONTENT_TYPES: Final = {PARQUET: "application/octet-stream", CSV: "text/csv"}


class ExposureFileError(ValueError):
    """An exposure file that is neither CSV nor parquet, or lacks a required column."""


def file_format(path: Path) -> str:
    """``"parquet"`` or ``"csv"``, by content; :class:`ExposureFileError` for anything else."""
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
            size = fh.seek(0, io.SEEK_END)
            fh.seek(max(size - len(PARQUET_MAGIC), 0))
            tail = fh.read()
    except OSError as exc:
        raise ExposureFileError(f"unreadable: {exc}") from exc
    if head.startswith(PARQUET_MAGIC):
        if tail == PARQUET_MAGIC and size >= 2 * len(PARQUET_MAGIC):
            return PARQUET
        raise ExposureFileError("starts like a parquet file but is not a whole one")
    if not _header(head):
        raise ExposureFileError(
            "is neither CSV (UTF-8 text with a header row) nor parquet: "
            "its content is not recognised"
        )
    return CSV


def _header(head: bytes) -> list[str]:
    """The CSV header row of ``head``; empty if ``head`` is not CSV text."""
    if b"\x00" in head:
        return []
    if len(head) == SNIFF_BYTES:  # a character may be cut at the end: judge the whole lines
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return []
    first = text.splitlines()[0] if text.strip() else ""
    row = next(csv.reader([first]), [])
    if not any(cell.strip() for cell in row):
        return []
    return [cell.strip() for cell in row]


def columns(path: Path, fmt: str) -> list[str]:
    """The file's column names."""
    if fmt == PARQUET:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises its own kinds for a broken file
            raise ExposureFileError(f"is not a readable parquet file: {exc}") from exc
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
        return _header(head[: head.find(b"\n") + 1 or None])
    except OSError as exc:
        raise ExposureFileError(f"unreadable: {exc}") from exc


@functools.cache
def required_columns(kind: str) -> tuple[str, ...]:
    """The OED columns a file of this kind must have."""
    from ods_tools.oed import OedSchema

    oed_type, _ = KINDS[kind]
    fields = OedSchema.from_oed_schema_info(None).schema["input_fields"][oed_type]
    return tuple(
        str(f["Input Field Name"]) for f in fields.values() if f.get("Property field status") == "R"
    )


def check(path: Path, kind: str) -> str:
    """The format of an exposure file of ``kind``, after checking it has the required
    columns; :class:`ExposureFileError` naming the file kind and the missing columns."""
    _, label = KINDS[kind]
    try:
        fmt = file_format(path)
        present = {c.lower() for c in columns(path, fmt)}
    except ExposureFileError as exc:
        raise ExposureFileError(f"the {label} {exc}") from exc
    missing = [c for c in required_columns(kind) if c.lower() not in present]
    if missing:
        raise ExposureFileError(
            f"the {label} ({fmt}) is missing required OED column(s): {', '.join(missing)}"
        )
    return fmt


def stored_name(filename: str, fmt: str) -> str:
    """``filename`` with the extension of its format, which is what oasislmf reads it by."""
    name = PurePath(filename).name or "file"
    stem = name[: -len(PurePath(name).suffix)] if PurePath(name).suffix else name
    return f"{stem}.{fmt}"
