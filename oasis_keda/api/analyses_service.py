"""Analysis records for the routes: creation checks, settings, and serialisation with the
current run's sub-task counts. Status changes and dispatch are not here: they belong to
the task controller (see :mod:`oasis_keda.api.actions`)."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oasis_keda.api.context import MAX_ID, ApiContext, check_id
from oasis_keda.api.errors import NotFoundError, ValidationFailedError
from oasis_keda.api.serializers import analysis_body
from oasis_keda.api.validation import body_dict, check_analysis_settings, pk_field, required_str
from oasis_keda.core import eta
from oasis_keda.core.errors import ModelNotFoundError
from oasis_keda.core.storage import UPLOADS
from oasis_keda.core.store import Analysis, Portfolio, StoredFile, SubTask

SETTINGS_FILENAME = "analysis_settings.json"
PRIORITY_RANGE = range(1, 11)


def get_analysis(session: Session, pk: int) -> Analysis:
    item = session.get(Analysis, check_id(pk))
    if item is None:
        raise NotFoundError()
    return item


def portfolio_in_use(session: Session, portfolio_id: int) -> bool:
    query = select(Analysis.id).where(Analysis.portfolio_id == portfolio_id).limit(1)
    return session.scalar(query) is not None


def current_sub_tasks(session: Session, a: Analysis) -> list[SubTask]:
    query = (
        select(SubTask)
        .where(SubTask.analysis_id == a.id, SubTask.run_number == a.run_number)
        .order_by(SubTask.id)
    )
    return list(session.scalars(query).all())


def body(ctx: ApiContext, session: Session, a: Analysis, *, base: str) -> dict[str, Any]:
    query = select(SubTask.id, SubTask.status).where(
        SubTask.analysis_id == a.id, SubTask.run_number == a.run_number
    )
    subs = [(int(i), str(s)) for i, s in session.execute(query).all()]
    return analysis_body(
        a,
        base=base,
        model_pk=ctx.model_pk(a.model_id),
        sub_tasks=subs,
        eta=eta.describe(session, ctx.redis_client, a),
    )


def _priority(data: dict[str, Any], errors: dict[str, list[str]]) -> int | None:
    if "priority" not in data or data["priority"] is None:
        return None
    value: Any = data["priority"]
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITY_RANGE:
        errors["priority"] = ["Ensure this value is an integer from 1 to 10."]
        return None
    return int(value)


def _model_registry_id(ctx: ApiContext, pk: int, errors: dict[str, Any]) -> str:
    if "model" in errors:
        return ""
    try:
        if not 1 <= pk <= MAX_ID:
            raise ModelNotFoundError(str(pk))
        return ctx.registry.get_by_pk(pk).model_id
    except ModelNotFoundError:
        errors["model"] = [f'Invalid pk "{pk}" - object does not exist.']
        return ""


def _check_portfolio(session: Session, pk: int, errors: dict[str, Any]) -> None:
    if "portfolio" in errors:
        return
    portfolio = session.get(Portfolio, pk) if 1 <= pk <= MAX_ID else None
    if portfolio is None:
        errors["portfolio"] = [f'Invalid pk "{pk}" - object does not exist.']
    elif portfolio.location_file_id is None and portfolio.accounts_file_id is None:
        errors["portfolio"] = 'either "location_file" or "accounts_file" must not be null'


def create(ctx: ApiContext, raw: Any, *, base: str) -> dict[str, Any]:
    data = body_dict(raw)
    errors: dict[str, Any] = {}
    name = required_str(data, "name", errors)
    portfolio_pk = pk_field(data, "portfolio", errors)
    model_pk = pk_field(data, "model", errors)
    files = data.get("complex_model_data_files", [])
    if files is not None and not isinstance(files, list):
        errors["complex_model_data_files"] = ["Expected a list of items."]
    elif files:
        errors["complex_model_data_files"] = ["Complex model data files are not supported."]
    priority = _priority(data, errors)
    model_id = _model_registry_id(ctx, model_pk, errors)
    with ctx.session() as session:
        _check_portfolio(session, portfolio_pk, errors)
        if errors:
            raise ValidationFailedError(errors)
        item = Analysis(name=name, portfolio_id=portfolio_pk, model_id=model_id, run_mode="V2")
        if priority is not None:
            item.priority = priority
        session.add(item)
        session.commit()
        return body(ctx, session, item, base=base)


def update(ctx: ApiContext, pk: int, raw: Any, *, base: str, partial: bool) -> dict[str, Any]:
    data = body_dict(raw)
    errors: dict[str, Any] = {}
    with ctx.session() as session:
        item = get_analysis(session, pk)
        if not partial or "name" in data:
            item.name = required_str(data, "name", errors)
        if not partial or "portfolio" in data:
            item.portfolio_id = pk_field(data, "portfolio", errors)
            _check_portfolio(session, item.portfolio_id, errors)
        if not partial or "model" in data:
            model_id = _model_registry_id(ctx, pk_field(data, "model", errors), errors)
            item.model_id = model_id or item.model_id
        priority = _priority(data, errors)
        if errors:
            raise ValidationFailedError(errors)
        if priority is not None:
            item.priority = priority
        session.commit()
        return body(ctx, session, item, base=base)


def copy(ctx: ApiContext, pk: int, raw: Any, *, base: str) -> dict[str, Any]:
    """A new analysis in status NEW from an existing one, as the platform copies: the same
    portfolio, model, settings, chunking and input files, named ``<name> - Copy`` unless
    the body names it; the body may also change ``portfolio`` and ``model``. Lookup files,
    outputs, tracebacks, logs, runs and warnings are not copied."""
    data = body_dict(raw)
    errors: dict[str, Any] = {}
    with ctx.session() as session:
        source = get_analysis(session, pk)
        name = required_str(data, "name", errors) if "name" in data else f"{source.name} - Copy"
        portfolio_id = source.portfolio_id
        if "portfolio" in data:
            portfolio_id = pk_field(data, "portfolio", errors)
            _check_portfolio(session, portfolio_id, errors)
        model_id = source.model_id
        if "model" in data:
            model_id = _model_registry_id(ctx, pk_field(data, "model", errors), errors)
        if errors:
            raise ValidationFailedError(errors)
        item = Analysis(
            name=name,
            portfolio_id=portfolio_id,
            model_id=model_id,
            run_mode=source.run_mode,
            priority=source.priority,
            settings=source.settings,
            settings_file_id=source.settings_file_id,
            input_file_id=source.input_file_id,
            chunking_configuration=source.chunking_configuration,
        )
        session.add(item)
        session.commit()
        return body(ctx, session, item, base=base)


def store_settings(ctx: ApiContext, pk: int, settings: Any) -> StoredFile:
    """Validate analysis settings, keep them as a file and on the record; return the file."""
    with ctx.session() as session:
        item = get_analysis(session, pk)
        check_analysis_settings(settings)
        target_dir = ctx.storage.root / UPLOADS / uuid.uuid4().hex
        target_dir.mkdir(parents=True, exist_ok=False)
        target = target_dir / SETTINGS_FILENAME
        payload = json.dumps(settings, indent=2).encode("utf-8")
        target.write_bytes(payload)
        stored = StoredFile(
            path=ctx.storage.relpath(target),
            filename=SETTINGS_FILENAME,
            content_type="application/json",
            size_bytes=len(payload),
        )
        session.add(stored)
        session.flush()
        item.settings = settings
        item.settings_file_id = stored.id
        session.commit()
        return stored


#: The analysis's columns that name a stored file of its own (portfolio files are not).
ANALYSIS_FILE_COLUMNS = (
    "input_file_id",
    "output_file_id",
    "settings_file_id",
    "lookup_errors_file_id",
    "lookup_success_file_id",
    "lookup_validation_file_id",
    "summary_levels_file_id",
    "input_generation_traceback_file_id",
    "run_traceback_file_id",
    "run_log_file_id",
)


def delete(ctx: ApiContext, pk: int) -> None:
    """Delete an analysis with its sub-task records and every file it stored: its run
    directories and the file records and uploads that only it refers to."""
    prefix = f"{ctx.storage.relpath(ctx.storage.analysis_dir(pk))}/"
    with ctx.session() as session:
        item = get_analysis(session, pk)
        own = {getattr(item, c) for c in ANALYSIS_FILE_COLUMNS} - {None}
        session.delete(item)
        session.flush()
        candidates = list(
            session.scalars(
                select(StoredFile).where(
                    StoredFile.id.in_(own) | StoredFile.path.startswith(prefix)
                )
            )
        )
        shared = _still_referenced(session, [f.id for f in candidates])
        files = [f for f in candidates if f.id not in shared]
        uploads = [ctx.storage.abspath(f.path) for f in files if not f.path.startswith(prefix)]
        for stored in files:
            session.delete(stored)
        session.commit()
    shutil.rmtree(ctx.storage.analysis_dir(pk), ignore_errors=True)
    for path in uploads:  # uploads/<uuid>/<name>: the directory holds this file only
        with contextlib.suppress(OSError):
            path.unlink()
            path.parent.rmdir()


def _still_referenced(session: Session, file_ids: list[int]) -> set[int]:
    """The file ids another analysis or a portfolio still refers to (kept)."""
    found: set[int] = set()
    columns = [getattr(Analysis, c) for c in ANALYSIS_FILE_COLUMNS] + [
        getattr(Portfolio, f"{f}_id")
        for f in (
            "location_file",
            "accounts_file",
            "reinsurance_info_file",
            "reinsurance_scope_file",
        )
    ]
    for column in columns:
        values: list[int | None] = list(session.scalars(select(column).where(column.in_(file_ids))))
        found.update(v for v in values if v is not None)
    return found
