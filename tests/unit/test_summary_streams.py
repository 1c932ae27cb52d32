"""worker.summary_streams on hand-written summary streams (no oasislmf run).

Covers: chunks dealt round robin merge into the one-chunk stream and index byte for byte;
a truncated stream, a header mismatch, an event missing from the events file and an event
in two chunks are refused; a stream that is not a summary stream is left alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from oasislmf.pytools.common.data import summary_stream_index_dtype

from worker import summary_streams as ss

HEADER = bytes([1, 0, 0, 3]) + np.int32(2).tobytes() + np.int32(1).tobytes()


def _event(event_id: int, summary_ids: list[int]) -> tuple[bytes, list[tuple[int, int]]]:
    """An event's records, and (summary_id, offset within them) per record."""
    out, index = b"", []
    loss = event_id * 1.1
    for sid in summary_ids:
        index.append((sid, len(out)))
        out += np.array([event_id, sid], dtype=np.int32).tobytes()
        out += np.float32(10.0).tobytes()
        for sidx, value in ((-1, loss), (1, loss / 3), (2, loss / 7), (0, 0.0)):
            out += np.int32(sidx).tobytes() + np.float32(value).tobytes()
    return out, index


def _write(path: Path, events: list[int], with_idx: bool = True) -> None:
    body, idx = b"", []
    for e in events:
        records, index = _event(e, [1, 2] if e % 2 else [3])
        idx += [(sid, len(HEADER) + len(body) + offset) for sid, offset in index]
        body += records
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(HEADER + body)
    if with_idx:
        np.array(idx, dtype=summary_stream_index_dtype).tofile(path.with_suffix(".idx"))


def _events_file(tmp_path: Path, events: list[int]) -> Path:
    path = tmp_path / "events.bin"
    np.array(events, dtype=np.int32).tofile(path)
    return path


EVENTS = [5, 3, 9, 1, 7, 2, 8]


def _chunks(tmp_path: Path, n: int, with_idx: bool = True) -> list[Path]:
    paths = []
    for k in range(1, n + 1):
        path = tmp_path / f"{k}.work" / f"P{k}.bin"
        # round robin, and an event with no loss (here: 8) is not written at all
        _write(path, [e for e in EVENTS[k - 1 :: n] if e != 8], with_idx)
        paths.append(path)
    return paths


@pytest.mark.parametrize("n", [2, 3, 7])
def test_round_robin_chunks_merge_into_the_one_chunk_stream(tmp_path: Path, n: int) -> None:
    events_file = _events_file(tmp_path, EVENTS)
    one = tmp_path / "one" / "P1.bin"
    _write(one, [e for e in EVENTS if e != 8])
    target = tmp_path / "work" / "P1.bin"
    target.parent.mkdir()
    assert ss.merge(_chunks(tmp_path, n), target, events_file)
    assert target.read_bytes() == one.read_bytes()
    assert target.with_suffix(".idx").read_bytes() == one.with_suffix(".idx").read_bytes()


def test_without_index_files(tmp_path: Path) -> None:
    events_file = _events_file(tmp_path, EVENTS)
    one = tmp_path / "one" / "P1.bin"
    _write(one, [e for e in EVENTS if e != 8], with_idx=False)
    target = tmp_path / "P1.bin"
    assert ss.merge(_chunks(tmp_path, 3, with_idx=False), target, events_file)
    assert target.read_bytes() == one.read_bytes()
    assert not target.with_suffix(".idx").exists()


def test_refusals(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path, 2)
    target = tmp_path / "P1.bin"
    with pytest.raises(ss.EventsError, match="not in"):
        ss.merge(chunks, target, _events_file(tmp_path, [5, 3, 9]))
    with pytest.raises(ss.EventsError, match="twice"):
        ss.merge(chunks, target, _events_file(tmp_path, [*EVENTS, 5]))
    events_file = _events_file(tmp_path, EVENTS)
    with pytest.raises(ss.StreamError, match="two chunks"):
        ss.merge([chunks[0], chunks[0]], target, events_file)
    data = chunks[1].read_bytes()
    chunks[1].write_bytes(data[:-4])
    with pytest.raises(ss.StreamError, match="truncated"):
        ss.merge(chunks, target, events_file)
    chunks[1].write_bytes(data[:4] + np.int32(9).tobytes() + data[8:])
    with pytest.raises(ss.StreamError, match="header"):
        ss.merge(chunks, target, events_file)
    assert not target.exists()


def test_not_a_summary_stream(tmp_path: Path) -> None:
    path = tmp_path / "P1.bin"
    path.write_bytes(bytes([1, 0, 0, 1]) + bytes(16))  # a GUL stream's header
    assert not ss.merge([path], tmp_path / "out.bin", _events_file(tmp_path, EVENTS))
    assert not (tmp_path / "out.bin").exists()
