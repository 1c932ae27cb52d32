"""Records -> the JSON shapes of the Oasis v2 API (the platform's field lists; docs/API.md).

Pure functions over records and plain values: no database session, no request. URLs are
absolute, built from the ``base`` URL of the request (``http://host:port/``), or null when
the file they point at is absent. Datetimes use the upstream format with microseconds and
a ``Z``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from oasis_keda.core.registry import ModelRecord
from oasis_keda.core.store import (
    Analysis,
    AnalysisStatus,
    Portfolio,
    StoredFile,
    SubTask,
    SubTaskStatus,
)

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

#: Portfolio file fields.
PORTFOLIO_FILE_FIELDS = (
    "location_file",
    "accounts_file",
    "reinsurance_info_file",
    "reinsurance_scope_file",
)

#: Analysis file fields -> the Content-Type they are served with (the client compares it
#: exactly) and the download name (``{id}`` is the analysis id).
ANALYSIS_FILE_FIELDS: dict[str, tuple[str, str]] = {
    "input_file": ("application/gzip", "analysis_{id}_inputs.tar.gz"),
    "output_file": ("application/gzip", "analysis_{id}_output.tar.gz"),
    "settings_file": ("application/json", "analysis_settings.json"),
    "lookup_errors_file": ("text/csv", "analysis_{id}_keys-errors.csv"),
    "lookup_success_file": ("text/csv", "analysis_{id}_keys.csv"),
    "lookup_validation_file": ("application/json", "analysis_{id}_exposure_summary.json"),
    "summary_levels_file": ("application/json", "analysis_{id}_summary_levels.json"),
    "input_generation_traceback_file": ("text/plain", "analysis_{id}_input_traceback.txt"),
    "run_traceback_file": ("text/plain", "analysis_{id}_run_traceback.txt"),
    "run_log_file": ("text/plain", "analysis_{id}_run_log.txt"),
}

SUB_TASK_LOG_FIELDS = ("output_log", "error_log", "retry_log")

#: Statuses during which the client's V2 progress loop polls on ``status_count``.
_GENERATING = AnalysisStatus.INPUTS_GENERATION_STARTED.value


def fmt_dt(value: dt.datetime | None) -> str | None:
    """Upstream datetime format; naive values are UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime(DATETIME_FORMAT)


def url(base: str, *parts: object) -> str:
    return base.rstrip("/") + "/" + "/".join(str(p).strip("/") for p in parts) + "/"


def model_body(record: ModelRecord, *, base: str, has_settings: bool) -> dict[str, Any]:
    pk = record.pk
    return {
        "id": pk,
        "supplier_id": record.supplier_id,
        "model_id": record.model_name,
        "version_id": record.version_id,
        "created": record.created,
        "modified": record.modified,
        "settings": url(base, "v2/models", pk, "settings") if has_settings else None,
        "versions": url(base, "v2/models", pk, "versions"),
        "scaling_configuration": url(base, "v2/models", pk, "scaling_configuration"),
        "chunking_configuration": url(base, "v2/models", pk, "chunking_configuration"),
        "groups": [],
        "run_mode": "V2",
        "data_files": [],
    }


def stored_name(item: StoredFile) -> str:
    return PurePosixPath(item.path).name


def related_file_body(item: StoredFile) -> dict[str, Any]:
    """The answer to a file upload (upstream's RelatedFile serializer)."""
    return {
        "created": fmt_dt(item.created),
        "file": stored_name(item),
        "filename": item.filename,
        "groups": [],
        "conversion_state": "NONE",
        "converted_file": None,
        "mapping_file": None,
    }


def _portfolio_file(base: str, pk: int, field: str, item: StoredFile | None) -> Any:
    if item is None:
        return None
    return {
        "uri": url(base, "v2/portfolios", pk, field),
        "name": item.filename,
        "stored": stored_name(item),
        "converted_uri": None,
        "converted_stored": None,
        "conversion_state": "NONE",
        "conversion_log_fie": None,  # (sic) upstream's field name
    }


def portfolio_body(
    p: Portfolio, *, base: str, detail: bool = True, validation_status: str | None = None
) -> dict[str, Any]:
    """``validation_status`` as the read should answer it (default: the stored one)."""
    body: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "created": fmt_dt(p.created),
        "modified": fmt_dt(p.modified),
        "groups": [],
    }
    for field in PORTFOLIO_FILE_FIELDS:
        body[field] = _portfolio_file(base, p.id, field, getattr(p, field))
    body["storage_links"] = url(base, "v2/portfolios", p.id, "storage_links")
    if detail:
        body.update(
            exposure_status="NONE",
            validation_status=validation_status or p.validation_status or "NONE",
            exposure_transform_status="NONE",
        )
    body["currency_conversion_json"] = _portfolio_file(
        base, p.id, "currency_conversion_json", p.currency_conversion_json
    )
    if detail:
        body["reporting_currency"] = p.reporting_currency
    return body


def status_count(statuses: Iterable[str], *, analysis_status: str) -> dict[str, int]:
    counts = {s.value: 0 for s in SubTaskStatus}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    total = sum(counts.values())
    if analysis_status == _GENERATING:
        # The client's V2 progress loop spins without polling once COMPLETED >= TOTAL
        # while the status is still STARTED (docs/API.md): keep one step open
        # until the status turns READY.
        total = max(total, 1)
        if counts[SubTaskStatus.COMPLETED.value] >= total:
            counts[SubTaskStatus.COMPLETED.value] = total - 1
    in_queue = sum(counts[s] for s in ("PENDING", "QUEUED", "STARTED"))
    return {
        "TOTAL_IN_QUEUE": in_queue,
        "TOTAL": total,
        "PENDING": counts["PENDING"],
        "QUEUED": counts["QUEUED"],
        "STARTED": counts["STARTED"],
        "COMPLETED": counts["COMPLETED"],
        "CANCELLED": counts["CANCELLED"],
        "ERROR": counts["ERROR"],
    }


def analysis_body(
    a: Analysis,
    *,
    base: str,
    model_pk: int | None,
    sub_tasks: list[tuple[int, str]],
    eta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``sub_tasks`` are (id, status) of the current run's sub-tasks; ``eta`` the estimate
    of a stage in progress (an addition to the platform's fields)."""
    pk = a.id

    def file_url(field: str) -> str | None:
        return url(base, "v2/analyses", pk, field) if getattr(a, f"{field}_id") else None

    body: dict[str, Any] = {
        "created": fmt_dt(a.created),
        "modified": fmt_dt(a.modified),
        "name": a.name,
        "id": pk,
        "portfolio": a.portfolio_id,
        "model": model_pk,
        "status": a.status,
        "run_mode": a.run_mode,
        "task_started": fmt_dt(a.task_started),
        "task_finished": fmt_dt(a.task_finished),
        "complex_model_data_files": [],
        "input_file": file_url("input_file"),
        "settings_file": file_url("settings_file"),
        "settings": url(base, "v2/analyses", pk, "settings") if a.settings_file_id else None,
    }
    for field in ANALYSIS_FILE_FIELDS:
        if field not in ("input_file", "settings_file"):
            body[field] = file_url(field)
    body.update(
        storage_links=url(base, "v2/analyses", pk, "storage_links"),
        chunking_configuration=url(base, "v2/analyses", pk, "chunking_configuration"),
        lookup_chunks=a.lookup_chunks,
        analysis_chunks=a.analysis_chunks,
        sub_task_count=len(sub_tasks),
        groups=[],
        sub_task_list=url(base, "v2/analyses", pk, "sub_task_list"),
        sub_task_error_ids=[i for i, s in sub_tasks if s == SubTaskStatus.ERROR.value],
        status_count=status_count((s for _, s in sub_tasks), analysis_status=a.status),
        priority=a.priority,
        num_events_complete=a.num_events_complete,
        num_events_total=a.num_events_total,
        warnings=list(a.warnings or []),
        eta=eta,
    )
    return body


def sub_task_body(t: SubTask, *, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": t.id,
        "task_id": t.task_id,
        "status": t.status,
        "queue_name": t.queue_name,
        "name": t.name,
        "slug": t.slug,
        "pending_time": fmt_dt(t.pending_time),
        "queue_time": fmt_dt(t.queue_time),
        "start_time": fmt_dt(t.start_time),
        "end_time": fmt_dt(t.end_time),
    }
    for field in SUB_TASK_LOG_FIELDS:
        present = getattr(t, field) is not None
        body[field] = url(base, "v2/analysis-task-statuses", t.id, field) if present else None
    body["retry_count"] = t.retry_count
    return body
