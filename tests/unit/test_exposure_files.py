"""Exposure files told CSV or parquet by content, and checked for required OED columns."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from oasis_keda.core import exposure_files as ef

LOCATION = (
    "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency\n1,A1,L1,GB,WTC,GBP\n"
)


def test_format_is_told_by_content_not_name(tmp_path: Path) -> None:
    csv_named_parquet = tmp_path / "loc.parquet"
    csv_named_parquet.write_text(LOCATION, encoding="utf-8")
    parquet_named_csv = tmp_path / "loc.csv"
    pd.read_csv(csv_named_parquet).to_parquet(parquet_named_csv, index=False)
    assert ef.check(csv_named_parquet, "location") == ef.CSV
    assert ef.check(parquet_named_csv, "location") == ef.PARQUET
    assert ef.stored_name("loc.csv", ef.PARQUET) == "loc.parquet"
    assert ef.stored_name("data", ef.CSV) == "data.csv"


def test_a_missing_required_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "acc.parquet"
    pd.DataFrame({"PortNumber": [1], "AccNumber": ["A1"], "PolNumber": ["P1"]}).to_parquet(path)
    with pytest.raises(ef.ExposureFileError) as err:
        ef.check(path, "accounts")
    assert str(err.value) == (
        "the accounts file (parquet) is missing required OED column(s): "
        "AccCurrency, PolPerilsCovered"
    )


@pytest.mark.parametrize(
    "content",
    [gzip.compress(LOCATION.encode()), b"", b"PAR1 cut short", "é".encode("latin-1") * 10],
)
def test_content_neither_csv_nor_parquet_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "loc.csv"
    path.write_bytes(content)
    with pytest.raises(ef.ExposureFileError, match="^the location file "):
        ef.check(path, "location")
