"""The whole-file text check of an uploaded CSV exposure file.

The format and the required columns are told by :mod:`oasis_keda.core.exposure_files` from
the file's head; a CSV file is then read once more, whole: UTF-8 throughout (a byte order
mark allowed), no NUL byte, and a header row split by commas, so that a file in another
encoding, or split by semicolons, is refused at upload rather than failing at lookup.
Every refusal names the field ``file`` and says what is wrong (the byte, the line).
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

from oasis_keda.api.errors import ValidationFailedError

UPLOAD_FIELD = "file"
PARQUET_MAGIC = b"PAR1"
CHUNK = 1 << 20


def _refuse(message: str) -> ValidationFailedError:
    return ValidationFailedError({UPLOAD_FIELD: [message]})


def check_csv_text(path: Path) -> None:
    """Raise :class:`ValidationFailedError` unless the whole CSV file is UTF-8 text without
    NUL bytes, with a comma-separated header row."""
    _csv_header(path)


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
