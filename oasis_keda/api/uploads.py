"""Turning a received upload into a stored file record, and serving stored files.

Shared by the portfolio and analysis routes: the upload is streamed to a temporary name,
type-checked, renamed into ``uploads/<uuid>/<name>`` (the storage layout of
:mod:`oasis_keda.core.storage`), and only then recorded, so a refused or broken upload leaves
neither a record nor a stray file.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from fastapi import Request
from starlette.responses import Response

from oasis_keda.api.content_check import check_csv_text
from oasis_keda.api.context import ApiContext, safe_name
from oasis_keda.api.errors import NotFoundError, ValidationFailedError
from oasis_keda.api.files import (
    Upload,
    archive_response,
    check_content_type,
    file_response,
    receive_upload,
    text_response,
)
from oasis_keda.core import exposure_files
from oasis_keda.core.storage import UPLOADS
from oasis_keda.core.store import StoredFile

FILE_FORMATS = ("csv", "parquet")


async def receive_checked(request: Request, ctx: ApiContext) -> Upload:
    upload = await receive_upload(
        request,
        dest_dir=ctx.storage.root / UPLOADS,
        max_bytes=ctx.settings.max_upload_bytes,
    )
    try:
        check_content_type(upload.filename, upload.content_type)
    except ValidationFailedError:
        upload.discard()
        raise
    return upload


def place(ctx: ApiContext, upload: Upload, *, exposure: str | None = None) -> StoredFile:
    """Move an accepted upload to its final place; a new (unsaved) record for it. An
    ``exposure`` file (its kind: ``location``, ``accounts``, ``ri_info``, ``ri_scope``) is
    checked first (CSV or parquet by content, required OED columns: 400 naming what is
    wrong) and stored under a name ending in its format, as oasislmf reads it by that."""
    name = safe_name(upload.filename)
    content_type = upload.content_type
    if exposure is not None:
        try:
            if exposure_files.file_format(upload.path) == exposure_files.CSV:
                check_csv_text(upload.path)  # the whole text, before its columns
        except exposure_files.ExposureFileError as exc:
            _, label = exposure_files.KINDS[exposure]
            raise ValidationFailedError(
                {"file": [f"the {label} {exc}{_text_detail(upload.path)}"]}
            ) from None
        try:
            fmt = exposure_files.check(upload.path, exposure)
        except exposure_files.ExposureFileError as exc:
            raise ValidationFailedError({"file": [str(exc)]}) from None
        name = exposure_files.stored_name(name, fmt)
        content_type = exposure_files.CONTENT_TYPES[fmt]
    target_dir = ctx.storage.root / UPLOADS / uuid.uuid4().hex
    target_dir.mkdir(parents=True, exist_ok=False)
    target = target_dir / name
    upload.path.replace(target)
    return StoredFile(
        path=ctx.storage.relpath(target),
        filename=upload.filename,
        content_type=content_type,
        size_bytes=upload.size_bytes,
    )


def _text_detail(path: Path) -> str:
    """Why a file is not CSV text (a NUL byte, an encoding error), as ``" (...)"``."""
    try:
        check_csv_text(path)
    except ValidationFailedError as exc:
        return f" ({'; '.join(str(m) for m in exc.fields.get('file', []))})"
    return ""


def serve(
    ctx: ApiContext,
    item: StoredFile | None,
    *,
    content_type: str | None = None,
    filename: str | None = None,
    file_format: str | None = None,
) -> Response:
    """The stored bytes with their exact type; 404 if absent; optional csv/parquet view. A
    stored directory (a stage's inputs or outputs) is sent as the tar.gz made of it as it
    is sent (:mod:`oasis_keda.api.archives`)."""
    if item is None:
        raise NotFoundError()
    path = ctx.storage.abspath(item.path)
    if path.is_dir():
        return archive_response(
            path, content_type=content_type or item.content_type, filename=filename or item.filename
        )
    if not path.is_file():
        raise NotFoundError("The file is missing from storage.")
    ctype = content_type or item.content_type
    name = filename or item.filename
    if file_format is not None:
        return _converted(path, ctype, name, file_format)
    return file_response(path, content_type=ctype, filename=name)


def _converted(path: Path, ctype: str, name: str, file_format: str) -> Response:
    import pandas as pd  # type: ignore[import-untyped]

    if file_format not in FILE_FORMATS:
        raise ValidationFailedError({"file_format": [f"must be one of {list(FILE_FORMATS)}"]})
    is_parquet = ctype == "application/octet-stream" or name.endswith((".parquet", ".pq"))
    if (file_format == "parquet") == is_parquet:
        return file_response(path, content_type=ctype, filename=name)
    stem = Path(name).stem
    try:
        if file_format == "parquet":
            buf = io.BytesIO()
            pd.read_csv(path).to_parquet(buf, index=False)
            return text_response(
                buf.getvalue(),
                content_type="application/octet-stream",
                filename=f"{stem}.parquet",
            )
        text = pd.read_parquet(path).to_csv(index=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types on bad files
        raise ValidationFailedError({"file_format": [f"conversion failed: {exc}"]}) from None
    return text_response(text, content_type="text/csv", filename=f"{stem}.csv")
