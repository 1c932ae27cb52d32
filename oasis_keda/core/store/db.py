"""Engine and session set-up for the records database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.core.store.models import Base

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout for multi-process use."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if create:
        create_tables(engine)
    return engine


def create_tables(engine: Engine) -> None:
    """Create missing tables; tolerate another process creating them at the same moment."""
    for attempt in range(3):
        try:
            Base.metadata.create_all(engine)
            add_missing_columns(engine)
            return
        except OperationalError as exc:  # "table ... already exists": a concurrent creator won
            if "already exists" not in str(exc) or attempt == 2:
                raise


def add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer release defines to tables an older one created."""
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        existing = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                try:
                    conn.execute(
                        text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                    )
                except DBAPIError as exc:  # a concurrent creator added it first
                    message = str(exc).lower()
                    if "duplicate column" not in message and "already exists" not in message:
                        raise


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
