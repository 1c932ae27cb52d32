"""A CSV file's rows as its own text, to copy any of them out without parsing the file.

The records are found by a scan for line ends outside quotes (a quoted cell may hold a
line break; a doubled quote inside it leaves the count of quotes even). Blank lines are
not rows, as for pandas. The caller checks :attr:`CsvRows.count` against the rows a CSV
reader found: a file the scan reads otherwise (lines ended by a lone carriage return, a
stray quote) must take the slower road.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

NEWLINE = ord("\n")
QUOTE = ord('"')
CARRIAGE_RETURN = ord("\r")


@dataclasses.dataclass(frozen=True)
class CsvRows:
    text: bytes
    header: bytes
    starts: np.ndarray[Any, Any]
    ends: np.ndarray[Any, Any]
    """Data row i is ``text[starts[i]:ends[i]]``, its line end included when it has one."""

    @property
    def count(self) -> int:
        return len(self.starts)

    @classmethod
    def read(cls, path: Path) -> CsvRows:
        text = Path(path).read_bytes()
        if not text:
            nothing = np.zeros(0, dtype=np.int64)
            return cls(text, b"", nothing, nothing)
        buf = np.frombuffer(text, dtype=np.uint8)
        newlines = np.flatnonzero(buf == NEWLINE)
        quotes = np.flatnonzero(buf == QUOTE)
        quotes_before = np.searchsorted(quotes, newlines)
        ends = newlines[quotes_before % 2 == 0] + 1
        if not len(ends) or ends[-1] < len(text):
            ends = np.append(ends, len(text))
        starts = np.concatenate(([0], ends[:-1]))
        # every record has a byte; a blank one is its line end alone: "\n" or "\r\n"
        lengths = ends - starts
        first = buf[starts]
        second = buf[np.minimum(starts + 1, len(buf) - 1)]
        blank = ((lengths == 1) & (first == NEWLINE)) | (
            (lengths == 2) & (first == CARRIAGE_RETURN) & (second == NEWLINE)
        )
        starts, ends = starts[~blank], ends[~blank]
        if not len(starts):
            return cls(text, b"", starts, ends)
        header = _with_line_end(text[starts[0] : ends[0]])
        starts.flags.writeable = False
        ends.flags.writeable = False
        return cls(text, header, starts[1:], ends[1:])

    def write(self, positions: np.ndarray[Any, Any], dest: Path) -> None:
        """The header and the data rows at ``positions``, in that order, to ``dest``."""
        text = self.text
        with Path(dest).open("wb") as fh:
            fh.write(self.header)
            starts = self.starts[positions].tolist()
            ends = self.ends[positions].tolist()
            fh.writelines(_with_line_end(text[s:e]) for s, e in zip(starts, ends, strict=True))


def _with_line_end(record: bytes) -> bytes:
    return record if record.endswith(b"\n") else record + b"\n"
