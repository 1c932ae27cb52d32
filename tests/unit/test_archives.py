"""The tar.gz made of a stored directory as it is downloaded.

Covers: the stream is a gzip'd tar of every file and folder under the directory (names
relative to it, sorted, bytes equal) in several chunks for a large file; a reader that
stops early stops the writer; a directory that cannot be read ends the stream with the
error rather than a short archive that looks whole.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from oasis_keda.api import archives


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.csv": b"x,y\n1,2\n",
        "sub/b.bin": os.urandom(3 * archives.CHUNK_BYTES),  # incompressible: several chunks
        "sub/deeper/c.json": b"{}",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_the_stream_is_the_whole_directory(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    chunks = list(archives.tar_gz_stream(tmp_path))
    assert len(chunks) > 1
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert set(names) == {"a.csv", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/c.json"}
        for name, data in files.items():
            fh = tar.extractfile(name)
            assert fh is not None and fh.read() == data


def test_a_reader_that_stops_early_stops_the_writer(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = threading.active_count()
    stream = archives.tar_gz_stream(tmp_path)
    next(stream)
    stream.close()
    assert threading.active_count() == before


def test_an_unreadable_directory_fails_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError):
        b"".join(archives.tar_gz_stream(tmp_path / "missing"))
    _tree(tmp_path)
    real = archives.members
    monkeypatch.setattr(archives, "members", lambda d: [*real(d), d / "vanished.csv"])
    with pytest.raises(FileNotFoundError):
        b"".join(archives.tar_gz_stream(tmp_path))
