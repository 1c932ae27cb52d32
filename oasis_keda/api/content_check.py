"""What an uploaded portfolio file must look like before it is stored.

A file named ``.csv`` that is really binary, or in another encoding, or split by
semicolons, used to be stored as is and fail only at lookup. Each upload is now read once:

* CSV: UTF-8 throughout (a byte order mark allowed), no NUL byte, a header row split by
  commas, and the file's required OED columns present (any case);
* parquet: the ``PAR1`` magic at both ends, a schema that can be read, and the required
  columns.

Every refusal names the field ``file`` and says what is wrong (the line, the column).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from pathlib import Path

from oasis_keda.api.errors import ValidationFailedError

UPLOAD_FIELD = "file"
PARQUET_MAGIC = b"PAR1"
CHUNK = 1 << 20

#: Required OED columns of each portfolio file (names compared without case).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "location_file": (
        "PortNumber",
        "AccNumber",
        "LocNumber",
        "CountryCode",
        "LocPerilsCovered",
        "LocCurrency",
    ),
    "accounts_file": ("PortNumber", "AccNumber"),
    "reinsurance_info_file": ("ReinsNumber",),
    "reinsurance_scope_file": ("ReinsNumber",),
}


def _refuse(message: str) -> ValidationFailedError:
    return ValidationFailedError({UPLOAD_FIELD: [message]})


def check_portfolio_file(path: Path, *, field: str, is_parquet: bool) -> None:
    """Raise :class:`ValidationFailedError` unless ``path`` holds a usable ``field`` file."""
    required = REQUIRED_COLUMNS.get(field, ())
    if is_parquet:
        columns = _parquet_columns(path)
    else:
        columns = _csv_header(path)
    _check_columns(columns, required)


def _check_columns(columns: Sequence[str], required: Sequence[str]) -> None:
    present = {c.strip().lower() for c in columns}
    missing = [c for c in required if c.lower() not in present]
    if missing:
        raise _refuse(f"missing required OED column(s): {', '.join(missing)}")


def _parquet_columns(path: Path) -> list[str]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if size < 12 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        raise _refuse("not a parquet file: it does not start and end with PAR1")
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types on bad files
        raise _refuse(f"unreadable parquet file: {exc}") from None


def _csv_header(path: Path) -> list[str]:
    """The header row, after checking the whole file is UTF-8 text without NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    head = ""
    line, offset = 1, 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            if b"\x00" in chunk:
                at = offset + chunk.index(b"\x00")
                raise _refuse(f"binary content: a NUL byte at byte {at}, not CSV text")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                before = line + chunk[: exc.start].count(b"\n")
                raise _refuse(
                    f"not UTF-8: byte {at} (line {before}) cannot be decoded; save the file "
                    "as UTF-8"
                ) from None
            if len(head) < CHUNK:
                head += text
            line += chunk.count(b"\n")
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _refuse("not UTF-8: the file ends inside a character") from None
    first = head.splitlines()[0] if head.strip() else ""
    if not first.strip():
        raise _refuse("empty: no header row")
    if "," not in first:
        for name, sep in (("semicolon", ";"), ("tab", "\t"), ("pipe", "|")):
            if sep in first:
                raise _refuse(f"the header is {name}-separated: OED CSV files use commas")
    try:
        return next(csv.reader(io.StringIO(first)))
    except csv.Error as exc:
        raise _refuse(f"line 1 (the header): {exc}") from None
