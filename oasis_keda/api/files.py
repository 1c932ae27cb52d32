"""Uploaded and served files: streamed, size-limited multipart uploads and exact downloads.

An upload is parsed as it arrives (python-multipart's streaming parser) and written to a
temporary file in the storage directory, so a large location file never sits in memory
and an over-size one is cut off at the limit. The part's type is checked as upstream does
(allowed types, and extension agreeing with type). Downloads carry the stored type with no
``charset`` suffix: the official client compares the Content-Type header exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import urllib.parse
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from oasis_keda.api.errors import (
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)

UPLOAD_FIELD = "file"
VALID_CONTENT_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/json",
        "text/csv",
        "application/gzip",
        "application/zip",
        "application/x-bzip2",
    }
)
#: Extension -> the only content type it may be uploaded with.
EXTENSION_TYPES = {
    "csv": "text/csv",
    "parquet": "application/octet-stream",
    "pq": "application/octet-stream",
    "gz": "application/gzip",
    "zip": "application/zip",
    "bz2": "application/x-bzip2",
    "json": "application/json",
}
WRITE_CHUNK_BYTES = 1024 * 1024

#: OpenAPI description of an upload body (the route parses the stream itself).
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                    "required": [UPLOAD_FIELD],
                }
            }
        },
    }
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Upload:
    """A received file part, written to ``path`` (a temporary name in the storage dir)."""

    path: Path
    filename: str
    content_type: str
    size_bytes: int

    @property
    def extension(self) -> str:
        return PurePosixPath(self.filename).suffix.lstrip(".").lower()

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def check_content_type(filename: str, content_type: str) -> None:
    """Refuse a type upstream refuses, naming the field ``file``."""
    if content_type not in VALID_CONTENT_TYPES:
        raise ValidationFailedError(
            {UPLOAD_FIELD: [f'File content type "{content_type}" is not supported.']}
        )
    ext = PurePosixPath(filename).suffix.lstrip(".").lower()
    expected = EXTENSION_TYPES.get(ext)
    if expected is not None and expected != content_type:
        raise ValidationFailedError(
            {
                UPLOAD_FIELD: [
                    (
                        f'File extension "{ext}" does not match content type "{content_type}" '
                        f'(expected "{expected}").'
                    )
                ]
            }
        )


class _PartState:
    """Collects one multipart request's ``file`` part into a file on disk."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.fh: Any = None
        self.filename: str | None = None
        self.content_type = ""
        self.size = 0
        self.found = False

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        if params.get(b"name") != UPLOAD_FIELD.encode() or self.found:
            return
        self.found = True
        self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
        ctype, _ = parse_options_header(self.headers.get(b"content-type", b""))
        self.content_type = ctype.decode("latin-1").lower() or "application/octet-stream"
        self.fh = self.dest.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.fh is None:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise PayloadTooLargeError(
                f"Upload exceeds the limit of {self.max_bytes} bytes "
                "(OASIS_KEDA_API_MAX_UPLOAD_BYTES)."
            )
        self.fh.write(data[start:end])

    def on_part_end(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


async def receive_upload(request: Request, *, dest_dir: Path, max_bytes: int) -> Upload:
    """Stream the request's multipart ``file`` part to a temporary file in ``dest_dir``."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UnsupportedMediaTypeError(
            f'Unsupported media type "{ctype.decode("latin-1")}" in request.'
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f".upload-{uuid.uuid4().hex}.part"
    state = _PartState(dest, max_bytes)
    callbacks: Any = {
        name: getattr(state, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except PayloadTooLargeError:
        _cleanup(state, dest)
        raise
    except Exception as exc:  # the multipart parser raises several types on bad input
        _cleanup(state, dest)
        raise ValidationFailedError({"detail": f"Multipart form parse error - {exc}"}) from exc
    if not state.found or state.fh is not None:
        _cleanup(state, dest)
        raise ValidationFailedError({UPLOAD_FIELD: ["No file was submitted."]})
    return Upload(
        path=dest,
        filename=state.filename or "data",
        content_type=state.content_type,
        size_bytes=state.size,
    )


def _cleanup(state: _PartState, dest: Path) -> None:
    if state.fh is not None:
        state.fh.close()
        state.fh = None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)


def _exact_type(response: Response, content_type: str) -> Response:
    # Starlette appends "; charset=utf-8" to text/* types; the client compares exactly.
    response.headers["content-type"] = content_type
    return response


def content_disposition(filename: str) -> str:
    """``attachment`` with a safe name: the last path part of the uploader's name, without
    control characters; an ASCII ``filename`` (anything else as ``_``) and the exact name
    percent-encoded in ``filename*`` (UTF-8), so no quote, newline or path reaches the
    header."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    clean = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".") or "download"
    ascii_name = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in "._- ") else "_" for ch in clean
    )
    encoded = urllib.parse.quote(clean, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"


def file_response(path: Path, *, content_type: str, filename: str) -> Response:
    response = FileResponse(
        path,
        media_type=content_type,
        headers={"content-disposition": content_disposition(filename)},
    )
    return _exact_type(response, content_type)


def archive_response(directory: Path, *, content_type: str, filename: str) -> Response:
    """The tar.gz of ``directory``, sent as it is made (no Content-Length)."""
    from oasis_keda.api.archives import tar_gz_stream

    response = StreamingResponse(
        tar_gz_stream(directory),
        media_type=content_type,
        headers={"content-disposition": content_disposition(filename)},
    )
    return _exact_type(response, content_type)


def text_response(text: str | bytes, *, content_type: str, filename: str) -> Response:
    response = Response(
        content=text,
        media_type=content_type,
        headers={"content-disposition": content_disposition(filename)},
    )
    return _exact_type(response, content_type)
