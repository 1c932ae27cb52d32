"""A CSV file's rows copied out as their own text parse as pandas parses them in the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from worker import file_memo
from worker.csv_rows import CsvRows


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig"
    )


CASES = {
    "plain": b"A,B\n1,x\n2,y\n3,z\n",
    "crlf": b"A,B\r\n1,x\r\n2,y\r\n3,z\r\n",
    "bom, no last line end": "\ufeffA,B\n1,x\n2,y\n3,z".encode(),
    "quoted line break and quotes": b'A,B\n1,"two\nlines"\n2,"say ""hi"""\n3,"a,b"\n',
    "blank lines": b"\nA,B\n1,x\n\n2,y\r\n\r\n3,z\n\n",
    "utf-8 text": "A,B\n1,Zürich\n2,東京\n3,x\n".encode(),
}


@pytest.mark.parametrize("name", CASES)
def test_rows_parse_as_in_the_file(tmp_path: Path, name: str) -> None:
    source = tmp_path / "location.csv"
    source.write_bytes(CASES[name])
    whole = _frame(source)
    rows = CsvRows.read(source)
    assert rows.count == len(whole)
    for positions in ([0, 2], [1], [0, 1, 2], [2]):
        dest = tmp_path / f"rows-{len(positions)}.csv"
        rows.write(np.array(positions), dest)
        got = _frame(dest)
        expected = whole.iloc[positions].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)


def test_a_lone_carriage_return_counts_otherwise(tmp_path: Path) -> None:
    """Lines ended by "\\r" alone are not found by the scan: the count tells the caller."""
    source = tmp_path / "location.csv"
    source.write_bytes(b"A,B\r1,x\r2,y\r")
    assert CsvRows.read(source).count != len(_frame(source))


def test_memo_reads_a_rewritten_file_again(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"A\n1\n")
    first = file_memo.cached("test-rows", path, CsvRows.read)
    assert file_memo.cached("test-rows", path, CsvRows.read) is first
    path.write_bytes(b"A\n1\n2\n")
    os.utime(path, ns=(0, 0))  # even with an older modification time
    assert file_memo.cached("test-rows", path, CsvRows.read).count == 2


@pytest.mark.parametrize("line_end", [b"\n", b"\r"])
def test_exposure_rows_either_way(tmp_path: Path, line_end: bytes) -> None:
    """The lookup's slice of a location file: by the scan, or by pandas when it counts
    otherwise; the same rows either way."""
    from worker import exposure

    lines = [b"PortNumber,AccNumber,LocNumber,Note"] + [
        b"1,A%d,L%d,n%d" % (i, i, i) for i in range(5)
    ]
    source = tmp_path / "location.csv"
    source.write_bytes(line_end.join(lines) + line_end)
    dest = tmp_path / "rows.csv"
    exposure.write_rows(source, np.array([1, 3]), dest)
    expected = _frame(source).iloc[[1, 3]].reset_index(drop=True)
    pd.testing.assert_frame_equal(_frame(dest), expected)


def test_an_empty_file_has_no_rows(tmp_path: Path) -> None:
    source = tmp_path / "location.csv"
    source.write_bytes(b"")
    assert CsvRows.read(source).count == 0
