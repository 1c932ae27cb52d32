"""ORM tables. Field names follow the Oasis v2 API where it has one; the status columns hold
the values of :mod:`oasis_keda.core.statuses`."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from oasis_keda.core.statuses import AnalysisStatus, SubTaskStatus


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class StoredFile(Base):
    """A file in the storage directory (uploaded, or produced by a run)."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)  # relative to the storage directory
    filename: Mapped[str] = mapped_column(String(255))  # name given by the uploader
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(default=0)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Portfolio(Base):
    __tablename__ = "portfolios"
    # ids are never used twice, even after the newest row is deleted (SQLite's AUTOINCREMENT;
    # PostgreSQL's sequences never go back)
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    location_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    accounts_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    reinsurance_info_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    reinsurance_scope_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    #: Currency conversion settings (JSON) and the currency losses are reported in.
    currency_conversion_json_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    reporting_currency: Mapped[str | None] = mapped_column(String(3))
    #: OED validation: its status, each file's result, and the errors it found (CSV).
    validation_status: Mapped[str | None] = mapped_column(String(40))
    validation: Mapped[dict[str, Any] | None]
    validation_errors_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))

    location_file: Mapped[StoredFile | None] = relationship(foreign_keys=[location_file_id])
    accounts_file: Mapped[StoredFile | None] = relationship(foreign_keys=[accounts_file_id])
    reinsurance_info_file: Mapped[StoredFile | None] = relationship(
        foreign_keys=[reinsurance_info_file_id]
    )
    reinsurance_scope_file: Mapped[StoredFile | None] = relationship(
        foreign_keys=[reinsurance_scope_file_id]
    )
    currency_conversion_json: Mapped[StoredFile | None] = relationship(
        foreign_keys=[currency_conversion_json_id]
    )


class Analysis(Base):
    __tablename__ = "analyses"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - ids never used twice

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolios.id"))
    model_id: Mapped[str] = mapped_column(String(255), index=True)  # registry id
    status: Mapped[str] = mapped_column(String(40), default=AnalysisStatus.NEW.value)
    run_mode: Mapped[str | None] = mapped_column(String(4), default="V2")
    priority: Mapped[int] = mapped_column(default=4)  # 1-10, 10 highest
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    task_started: Mapped[dt.datetime | None]
    task_finished: Mapped[dt.datetime | None]
    #: The analysis's own chunking configuration (JSON), else the model's applies.
    chunking_configuration: Mapped[dict[str, Any] | None]
    settings: Mapped[dict[str, Any] | None]  # analysis_settings.json content
    #: Incremented by every generate or run request; sub-task records carry it.
    run_number: Mapped[int] = mapped_column(default=0)
    lookup_chunks: Mapped[int | None]
    #: The location file's rows, counted when the inputs are planned (sizes the ETA).
    lookup_rows: Mapped[int | None]
    analysis_chunks: Mapped[int | None]
    num_events_total: Mapped[int] = mapped_column(default=0)
    num_events_complete: Mapped[int] = mapped_column(default=0)
    input_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    output_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    settings_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    lookup_errors_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    lookup_success_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    lookup_validation_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    summary_levels_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    input_generation_traceback_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("stored_files.id")
    )
    run_traceback_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    run_log_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    #: What the latest request warned about (a requested perspective dropped, say).
    warnings: Mapped[list[str] | None]

    portfolio: Mapped[Portfolio] = relationship()
    sub_tasks: Mapped[list[SubTask]] = relationship(
        back_populates="analysis", order_by="SubTask.id", cascade="all, delete-orphan"
    )


class SubTask(Base):
    """One Celery sub-task of an analysis stage (Oasis's AnalysisTaskStatus)."""

    __tablename__ = "sub_tasks"
    __table_args__ = (Index("ix_sub_tasks_analysis_run", "analysis_id", "run_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"))
    run_number: Mapped[int]
    stage: Mapped[str] = mapped_column(String(20))  # "inputs" or "losses"
    slug: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default=SubTaskStatus.PENDING.value)
    queue_name: Mapped[str] = mapped_column(String(255))
    worker: Mapped[str | None] = mapped_column(String(255))
    pending_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    queue_time: Mapped[dt.datetime | None]
    start_time: Mapped[dt.datetime | None]
    end_time: Mapped[dt.datetime | None]
    retry_count: Mapped[int] = mapped_column(default=0)
    output_log: Mapped[str | None] = mapped_column(Text)
    error_log: Mapped[str | None] = mapped_column(Text)
    retry_log: Mapped[str | None] = mapped_column(Text)

    analysis: Mapped[Analysis] = relationship(back_populates="sub_tasks")


class RegisteredModel(Base):
    """A registered model's record, as the Redis registry holds it (its JSON): the copy
    that survives a Redis restart. Redis is the cache every component reads. A deleted
    model keeps its row with an empty record (a tombstone), so that an older copy found
    in Redis later is known to be stale."""

    __tablename__ = "registered_models"

    model_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    pk: Mapped[int] = mapped_column(unique=True)
    record: Mapped[str] = mapped_column(Text)  # "" once deleted
    modified: Mapped[str] = mapped_column(String(40))  # the record's, or the deletion's


class RegistrySetting(Base):
    """A cluster-wide setting of the registry (the global worker limit), as text."""

    __tablename__ = "registry_settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
