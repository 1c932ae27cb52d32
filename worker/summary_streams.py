"""Merge the chunks' summary streams into the one stream an unchunked run writes.

oasislmf's output step (``lecpy`` for EPT/PSEPT, ``aalpy`` for ALT/PALT) reads every
``*.bin`` of a summary folder, in name order (P1, P10, P2...), and adds each event's loss
into its period's total in float32. ``evepy`` deals the events to chunks (round robin by
default: chunk k gets events k, k+N, k+2N...), so with the chunk files read one after
another a period's events are added in another order than in the unchunked run's single
stream, and float32 sums differ in the last digit (PiWind ``gul_S1_psept.csv`` with 4
chunks: 1655104.375 against 1655104.25). An event's records are the same bytes whichever
chunk computed it, so putting every event's block back where ``evepy 1 1`` puts the event
gives the unchunked run's stream byte for byte, and the output step then adds in the same
order.

A summary stream: a 12-byte header (stream type, sample size, summary set id), then for
each event and summary id a record ``(event_id, summary_id, exposure)`` followed by
``(sidx, loss)`` pairs ending with sidx 0. ``summarypy -m`` writes beside it a ``.idx`` of
``(summary_id, byte offset)`` per record, which moves with its event's block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt
from oasislmf.pytools.common.data import def_to_type_and_size, summary_stream_index_dtype
from oasislmf.pytools.common.event_stream import SUMMARY_STREAM_ID, mv_read
from oasislmf.pytools.eve import manager as eve
from oasislmf.utils.defaults import (
    EVE_DEFAULT_SHUFFLE,
    EVE_FISHER_YATES,
    EVE_NO_SHUFFLE,
    EVE_STD_SHUFFLE,
)

HEADER_SIZE = 12
_STREAM_TYPE_BYTE = 3  # the header's first word: 3 bytes of aggregation type, then the source
_EVENT_ID_T, _EVENT_ID_N = def_to_type_and_size("event_id")
_SUMMARY_ID_T, _SUMMARY_ID_N = def_to_type_and_size("summary_id")
_SIDX_T, _SIDX_N = def_to_type_and_size("sidx")
_LOSS_T, _LOSS_N = def_to_type_and_size("loss")
_RECORD_HEAD = _EVENT_ID_N + _SUMMARY_ID_N + _LOSS_N
_PAIR = _SIDX_N + _LOSS_N
_MIN_RECORD = _RECORD_HEAD + _PAIR


class StreamError(Exception):
    """A chunk's summary stream or index is unreadable or inconsistent with the others."""


class EventsError(Exception):
    """The events file cannot order the streams (an event id twice, or one missing)."""


@nb.njit(cache=True)
def _find_blocks(fin: Any) -> tuple[Any, Any, bool]:  # pragma: no cover - compiled
    size = len(fin)
    cap = (size - HEADER_SIZE) // _MIN_RECORD + 2
    starts = np.empty(cap, dtype=np.int64)
    events = np.empty(cap, dtype=np.int64)
    n = 0
    cursor = HEADER_SIZE
    whole = True
    while cursor < size:
        record = cursor
        if cursor + _RECORD_HEAD > size:
            whole = False
            break
        event_id, cursor = mv_read(fin, cursor, _EVENT_ID_T, _EVENT_ID_N)
        _, cursor = mv_read(fin, cursor, _SUMMARY_ID_T, _SUMMARY_ID_N)
        _, cursor = mv_read(fin, cursor, _LOSS_T, _LOSS_N)
        ended = False
        while cursor + _PAIR <= size:
            sidx, cursor = mv_read(fin, cursor, _SIDX_T, _SIDX_N)
            _, cursor = mv_read(fin, cursor, _LOSS_T, _LOSS_N)
            if sidx == 0:
                ended = True
                break
        if not ended:
            whole = False
            break
        if n == 0 or events[n - 1] != event_id:
            starts[n] = record
            events[n] = event_id
            n += 1
    starts[n] = size
    return starts[: n + 1], events[:n], whole


def event_blocks(buf: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Byte offsets where each event's records start (then the stream's end), and event ids.

    An event's records are consecutive (summarypy writes an event's summary ids together).
    """
    if len(buf) < HEADER_SIZE:
        raise StreamError("shorter than a summary stream header")
    starts, events, whole = _find_blocks(buf)
    if not whole:
        raise StreamError("truncated summary stream")
    if len(np.unique(events)) != len(events):
        raise StreamError("an event's records are not consecutive")
    return starts, events


def one_chunk_rank(events: npt.NDArray[Any], shuffle_rule: int | None) -> npt.NDArray[np.int64]:
    """rank[i]: where ``evepy 1 1`` (with ``shuffle_rule``) puts the events file's i-th event."""
    rule = EVE_DEFAULT_SHUFFLE if shuffle_rule is None else shuffle_rule
    n = len(events)
    positions = np.arange(n, dtype=np.int64)
    # the partitions only move items about (with a seeded shuffle): feed them positions
    order: Any
    if rule == EVE_NO_SHUFFLE:
        order = eve.partition_events__no_shuffle(positions, 1, 1)
    elif rule == EVE_FISHER_YATES:
        order = np.fromiter(eve.partition_events__random(positions, 1, 1), dtype=np.int64)
    elif rule == EVE_STD_SHUFFLE:
        order = eve.partition_events__random_builtin(positions, 1, 1)
    else:
        order = eve.partition_events__round_robin(positions, 1, 1)
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
    return rank


def _read(path: Path) -> npt.NDArray[np.uint8]:
    """The file's bytes, mapped rather than read (chunk streams can be large)."""
    if path.stat().st_size == 0:
        return np.empty(0, dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r")


def _is_summary_stream(buf: npt.NDArray[np.uint8]) -> bool:
    return len(buf) >= HEADER_SIZE and int(buf[_STREAM_TYPE_BYTE]) == SUMMARY_STREAM_ID


def merge(
    sources: list[Path], target: Path, events_file: Path, shuffle_rule: int | None = None
) -> bool:
    """Write ``target`` (and its ``.idx`` if the sources have one) as the unchunked stream.

    ``sources`` are the chunks' streams of one summary folder. Returns False, writing
    nothing, if they are not summary streams.
    """
    bufs = [_read(src) for src in sources]
    if not bufs or not all(_is_summary_stream(b) for b in bufs):
        return False
    header = bufs[0][:HEADER_SIZE].tobytes()
    for src, buf in zip(sources, bufs, strict=True):
        if buf[:HEADER_SIZE].tobytes() != header:
            raise StreamError(f"{src}: header differs from {sources[0]}'s")
    idx_paths = [src.with_suffix(".idx") for src in sources]
    with_idx = [p.exists() for p in idx_paths]
    if any(with_idx) and not all(with_idx):
        raise StreamError("some chunks wrote a .idx file, others not")

    events = eve.read_events(events_file)
    by_id = np.argsort(events, kind="stable")
    sorted_ids = events[by_id]
    if len(events) and np.any(sorted_ids[1:] == sorted_ids[:-1]):
        raise EventsError(f"{events_file} holds an event id twice")
    rank_of_position = one_chunk_rank(events, shuffle_rule)

    chunk_parts, start_parts, rank_parts = [], [], []
    all_starts: list[npt.NDArray[np.int64]] = []
    for k, (src, buf) in enumerate(zip(sources, bufs, strict=True)):
        try:
            starts, ids = event_blocks(buf)
        except StreamError as exc:
            raise StreamError(f"{src}: {exc}") from exc
        where = np.minimum(np.searchsorted(sorted_ids, ids), max(len(events) - 1, 0))
        if len(ids) and (not len(events) or not np.array_equal(sorted_ids[where], ids)):
            raise EventsError(f"{src} holds events that are not in {events_file}")
        all_starts.append(starts)
        chunk_parts.append(np.full(len(ids), k, dtype=np.int64))
        start_parts.append(starts[:-1])
        rank_parts.append(rank_of_position[by_id[where]])
    chunk = np.concatenate(chunk_parts)
    start = np.concatenate(start_parts)
    end = np.concatenate([s[1:] for s in all_starts])
    rank = np.concatenate(rank_parts)
    if len(np.unique(rank)) != len(rank):
        raise StreamError("an event is in two chunks' streams")
    order = np.argsort(rank, kind="stable")
    size = end - start
    new_start = np.empty(len(order), dtype=np.int64)
    new_start[order] = HEADER_SIZE + np.concatenate(([0], np.cumsum(size[order])[:-1]))

    part = target.with_name(target.name + ".part")
    with open(part, "wb") as out:
        out.write(header)
        out.writelines(bufs[chunk[b]][start[b] : end[b]].tobytes() for b in order)
    if all(with_idx):
        _merge_index(idx_paths, all_starts, new_start, target.with_suffix(".idx"))
    part.replace(target)
    return True


def _merge_index(
    idx_paths: list[Path],
    starts: list[npt.NDArray[np.int64]],
    new_start: npt.NDArray[np.int64],
    target: Path,
) -> None:
    """Each index record moves with its event's block; records in stream order."""
    moved_parts = []
    first_block = 0
    for path, chunk_starts in zip(idx_paths, starts, strict=True):
        idx = np.fromfile(path, dtype=summary_stream_index_dtype)
        n_blocks = len(chunk_starts) - 1
        block = np.searchsorted(chunk_starts, idx["offset"], side="right") - 1
        if len(idx) and (block.min() < 0 or block.max() >= n_blocks):
            raise StreamError(f"{path}: offsets outside its summary stream")
        moved = idx.copy()
        moved["offset"] = idx["offset"] - chunk_starts[block] + new_start[first_block + block]
        moved_parts.append(moved)
        first_block += n_blocks
    merged = np.concatenate(moved_parts)
    merged = merged[np.argsort(merged["offset"], kind="stable")]
    part = target.with_name(target.name + ".part")
    merged.tofile(part)
    part.replace(target)
