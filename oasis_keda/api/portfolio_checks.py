"""A portfolio's OED validation, reporting currency and currency conversion settings.

Validation runs ods_tools' checks (the OED schema's required fields, valid values, perils,
codes, dates...) over the portfolio's exposure files together, every check answering with
what it found rather than stopping at the first. The result is kept per file (validated or
not), with the errors as a CSV (``errors_file/``), and the portfolio's
``validation_status`` becomes ``RUN_COMPLETED`` or ``ERROR``.

It runs within the request. The official client (``oasislmf api validate``) posts, then
polls the portfolio until ``validation_status`` has been pending once and is no longer:
so after a validation the status reads ``STARTED`` for one read of the portfolio, then its
result (the same device keeps ``status_count`` below ``TOTAL`` while inputs are generated).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

from sqlalchemy.orm import Session

from oasis_keda.api.context import ApiContext
from oasis_keda.api.errors import ValidationFailedError
from oasis_keda.core.storage import UPLOADS
from oasis_keda.core.store import Portfolio, StoredFile

STARTED = "STARTED"
COMPLETED = "RUN_COMPLETED"
ERROR = "ERROR"
NONE = "NONE"
#: Portfolio file field -> (ods_tools' name of the source, the validate/ answer's key).
SOURCES = {
    "location_file": ("location", "location_validated"),
    "accounts_file": ("account", "accounts_validated"),
    "reinsurance_info_file": ("ri_info", "reinsurance_info_validated"),
    "reinsurance_scope_file": ("ri_scope", "reinsurance_scope_validated"),
}
CURRENCY = re.compile(r"[A-Z]{3}")
ERRORS_NAME = "validation_errors.csv"


def status_for_read(session: Session, item: Portfolio) -> str:
    """The validation status a read of the portfolio answers: a finished validation reads
    ``STARTED`` once, then its result (see the module's note)."""
    state = dict(item.validation or {})
    if item.validation_status == STARTED and state.get("final"):
        item.validation_status = str(state.pop("final"))
        item.validation = state
        session.commit()
        return STARTED
    return item.validation_status or NONE


def validated(item: Portfolio) -> dict[str, bool | None]:
    """Per file: True or False after a validation, None without the file or a validation."""
    results = (item.validation or {}).get("files", {})
    return {
        key: results.get(field) if getattr(item, f"{field}_id") else None
        for field, (_, key) in SOURCES.items()
    }


def validate(ctx: ApiContext, session: Session, item: Portfolio) -> None:
    """Validate the portfolio's exposure files; keep the result and the errors file."""
    from ods_tools.oed import DEFAULT_VALIDATION_CONFIG, OdsException, OedExposure

    files = {
        field: ctx.storage.abspath(stored.path)
        for field in SOURCES
        if (stored := getattr(item, field)) is not None
    }
    if not files:
        raise ValidationFailedError({"portfolio": ["The portfolio has no exposure files."]})
    config = [{**check, "on_error": "return"} for check in DEFAULT_VALIDATION_CONFIG]
    try:
        exposure = OedExposure(
            **{SOURCES[f][0]: str(p) for f, p in files.items()}, validation_config=config
        )
        found: list[dict[str, Any]] = list(exposure.check() or [])
    except (OdsException, ValueError, KeyError) as exc:
        found = [{"name": "exposure", "source": "", "msg": str(exc)}]
    failed = {str(e.get("name", "")) for e in found}
    results = {
        field: SOURCES[field][0] not in failed and "exposure" not in failed for field in files
    }
    item.validation_errors_file_id = _errors_file(ctx, session, found) if found else None
    item.validation = {"files": results, "final": ERROR if found else COMPLETED}
    item.validation_status = STARTED
    session.commit()


def _errors_file(ctx: ApiContext, session: Session, found: list[dict[str, Any]]) -> int:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("file", "source", "message"))
    for error in found:
        writer.writerow((error.get("name", ""), error.get("source", ""), error.get("msg", "")))
    target_dir = ctx.storage.root / UPLOADS / uuid.uuid4().hex
    target_dir.mkdir(parents=True, exist_ok=False)
    target = target_dir / ERRORS_NAME
    data = buf.getvalue().encode("utf-8")
    target.write_bytes(data)
    stored = StoredFile(
        path=ctx.storage.relpath(target),
        filename=ERRORS_NAME,
        content_type="text/csv",
        size_bytes=len(data),
    )
    session.add(stored)
    session.flush()
    return stored.id


def reporting_currency(raw: Any) -> str:
    """The ``reporting_currency`` of a request body: an ISO 4217 code (three capitals)."""
    value = raw.get("reporting_currency") if isinstance(raw, dict) else None
    if not isinstance(value, str) or not CURRENCY.fullmatch(value):
        raise ValidationFailedError(
            {"reporting_currency": [f"Expected a three-letter ISO 4217 code, got {value!r}."]}
        )
    return value


def check_currency_conversion(data: bytes) -> None:
    """Currency conversion settings: a JSON object (as ods_tools reads them)."""
    import json

    try:
        settings = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailedError({"file": [f"not valid JSON: {exc}"]}) from None
    if not isinstance(settings, dict) or "currency_conversion_type" not in settings:
        raise ValidationFailedError(
            {"file": ["Expected a JSON object with a currency_conversion_type (ods_tools)."]}
        )
