"""Pure serialisation rules of the API.

Covers: the upstream datetime format (naive = UTC, aware converted); absolute URLs; the
``status_count`` guard that keeps COMPLETED below TOTAL while inputs are being generated
(the official client's V2 progress loop otherwise spins without polling) and the plain
counts in every other status; upload type checks (allowed types, extension agreeing).
"""

from __future__ import annotations

import datetime as dt

import pytest

from oasis_keda.api.errors import ValidationFailedError
from oasis_keda.api.files import check_content_type
from oasis_keda.api.serializers import fmt_dt, status_count, url


def test_datetimes_use_the_upstream_format() -> None:
    naive = dt.datetime(2026, 1, 2, 3, 4, 5, 6)
    assert fmt_dt(naive) == "2026-01-02T03:04:05.000006Z"
    aware = dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert fmt_dt(aware) == "2026-01-02T03:04:05.000000Z"
    assert fmt_dt(None) is None


def test_urls_are_absolute_with_a_trailing_slash() -> None:
    assert url("http://h:1/", "v2/models", 3, "settings") == "http://h:1/v2/models/3/settings/"


@pytest.mark.parametrize(
    ("statuses", "analysis_status", "total", "completed"),
    [
        ([], "INPUTS_GENERATION_STARTED", 1, 0),
        (["COMPLETED"] * 5, "INPUTS_GENERATION_STARTED", 5, 4),
        (["COMPLETED"] * 4 + ["STARTED"], "INPUTS_GENERATION_STARTED", 5, 4),
        (["COMPLETED"] * 5, "READY", 5, 5),
        ([], "NEW", 0, 0),
        (["COMPLETED", "ERROR", "PENDING"], "RUN_STARTED", 3, 1),
    ],
)
def test_status_count_never_lets_the_client_spin(
    statuses: list[str], analysis_status: str, total: int, completed: int
) -> None:
    counts = status_count(statuses, analysis_status=analysis_status)
    assert (counts["TOTAL"], counts["COMPLETED"]) == (total, completed)
    assert set(counts) == {
        "TOTAL_IN_QUEUE",
        "TOTAL",
        "PENDING",
        "QUEUED",
        "STARTED",
        "COMPLETED",
        "CANCELLED",
        "ERROR",
    }


@pytest.mark.parametrize(
    ("filename", "ctype", "ok"),
    [
        ("data", "text/csv", True),
        ("data", "application/octet-stream", True),
        ("loc.csv", "text/csv", True),
        ("loc.CSV", "text/csv", True),
        ("loc.parquet", "application/octet-stream", True),
        ("loc.gz", "application/gzip", True),
        ("data", "text/plain", False),
        ("loc.csv", "application/json", False),
        ("loc.zip", "application/gzip", False),
        ("settings.json", "application/json", True),
    ],
)
def test_upload_types_are_checked_as_upstream(filename: str, ctype: str, ok: bool) -> None:
    if ok:
        check_content_type(filename, ctype)
    else:
        with pytest.raises(ValidationFailedError) as err:
            check_content_type(filename, ctype)
        assert "file" in err.value.fields
