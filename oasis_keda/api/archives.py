"""An analysis's inputs and outputs as tar.gz archives, made as they are downloaded.

A stage is complete when its files are (docs/API.md): the records name the directory of
input files or outputs, which no step writes into once the stage is complete, and the
archive is written to the client as it is made. gzip at level 1 (the fastest), members in
sorted order with their names relative to the directory, as the archive was when a worker
wrote it. The tar is written by :mod:`tarfile` in a thread of its own into a bounded
queue, which the response reads: the archive is never held whole, in memory or on disk.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import queue
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

GZIP_LEVEL: Final = 1
CHUNK_BYTES: Final = 1024 * 1024
_QUEUED_CHUNKS: Final = 8
_DONE: Final = object()


class _Closed(Exception):
    """The reader went away (the client disconnected)."""


class _QueueWriter(io.RawIOBase):
    """A write-only file whose bytes go, in chunks of about CHUNK_BYTES, to a queue."""

    def __init__(self, out: queue.Queue[object], stop: threading.Event) -> None:
        self.out = out
        self.stop = stop
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.buffer += data
        if len(self.buffer) >= CHUNK_BYTES:
            self._send()
        return len(data)

    def _send(self) -> None:
        chunk, self.buffer = bytes(self.buffer), bytearray()
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.out.put(chunk, timeout=0.5)
                return
        raise _Closed

    def flush_all(self) -> None:
        if self.buffer:
            self._send()


def members(directory: Path) -> list[Path]:
    """The archive's members: everything under ``directory``, sorted."""
    return sorted(directory.rglob("*"))


def _write(directory: Path, sink: _QueueWriter) -> None:
    with (
        gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL) as gz,
        tarfile.open(fileobj=gz, mode="w|") as tar,
    ):
        for path in members(directory):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    sink.flush_all()


def tar_gz_stream(directory: Path) -> Iterator[bytes]:
    """The tar.gz of ``directory``, chunk by chunk. Closing the iterator early (a client
    that disconnects) stops the writer. A file that cannot be read raises, after the
    chunks already sent: the client sees a broken download, never a short archive."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    out: queue.Queue[object] = queue.Queue(maxsize=_QUEUED_CHUNKS)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            _write(directory, _QueueWriter(out, stop))
        except _Closed:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            failure.append(exc)
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                out.put(_DONE, timeout=0.5)
                return

    writer = threading.Thread(target=produce, name="tar-gz-stream", daemon=True)
    writer.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                break
            assert isinstance(item, bytes)
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        writer.join()
