"""A records database made by an older release gains the columns a newer one defines."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import inspect

from oasis_keda.core.store import make_engine


def test_missing_nullable_columns_are_added(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    engine.dispose()
    with sqlite3.connect(db) as conn:  # as an older release left it: no warnings column
        conn.execute("ALTER TABLE analyses DROP COLUMN warnings")
        conn.execute("ALTER TABLE portfolios DROP COLUMN reporting_currency")
    engine = make_engine(f"sqlite:///{db}")
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("analyses")}
        assert "warnings" in columns
        assert "reporting_currency" in {
            c["name"] for c in inspect(engine).get_columns("portfolios")
        }
    finally:
        engine.dispose()
