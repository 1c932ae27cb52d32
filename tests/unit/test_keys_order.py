"""Which locations each lookup chunk takes, and the merge of a partition's pieces.

Covers: chunks take whole oasislmf partitions when there are at least as many partitions
as chunks, and shares of one partition otherwise, every location exactly once; the
merge of pieces of a lookup whose results come in blocks (peril, coverage), each in
input-row order, gives the one-call order, for any split (property test), with failures
merged by status blocks and categorical columns kept categorical; the merge declines
(None) when a piece repeats a block, when rows go backwards within a block, when no piece
orders two blocks, or when the results lack the columns it needs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import keys_order
from worker.keys_order import Piece


@pytest.mark.parametrize(
    ("partitions", "chunks"), [(1, 1), (1, 3), (2, 8), (3, 2), (4, 4), (9, 43), (7, 3), (2, 1)]
)
def test_every_location_in_exactly_one_chunk(partitions: int, chunks: int) -> None:
    unique = np.arange(100, 100 + 57)
    taken: list[int] = []
    for k in range(1, chunks + 1):
        pieces = keys_order.chunk_pieces(partitions, k, chunks)
        if chunks > partitions:
            assert len(pieces) == 1  # a share of one partition
        else:
            assert all(p.parts == 1 for p in pieces)  # whole partitions
        for piece in pieces:
            taken.extend(keys_order.piece_loc_ids(unique, partitions, piece).tolist())
    assert sorted(taken) == unique.tolist()


def test_pieces_follow_oasislmfs_partitions() -> None:
    unique = np.arange(10)
    # 2 partitions: 0-4 and 5-9; 4 chunks: two shares of each
    got = [
        keys_order.piece_loc_ids(unique, 2, p).tolist()
        for k in range(1, 5)
        for p in keys_order.chunk_pieces(2, k, 4)
    ]
    assert got == [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9]]
    assert keys_order.chunk_pieces(3, 1, 2) == [
        Piece(partition=0, part=0, parts=1),
        Piece(partition=1, part=0, parts=1),
    ]


def test_chunk_out_of_range() -> None:
    with pytest.raises(ValueError, match="chunk 3 of 2"):
        keys_order.chunk_pieces(1, 3, 2)


BLOCKS = [("WSS", 1), ("WTC", 1), ("WSS", 3), ("WTC", 3)]


def _lookup(loc_ids: list[int], failing: set[int] | frozenset[int] = frozenset()) -> pd.DataFrame:
    """A lookup in the built-in one's shape: block-major, rows in input order per block,
    failures (per status) where a row has no key."""
    rows = []
    for peril, cov in BLOCKS:
        for loc in loc_ids:
            status = "fail" if loc in failing and cov == 3 else "success"
            rows.append((loc, peril, cov, 10 * loc + cov, status))
    frame = pd.DataFrame(rows, columns=["loc_id", "peril_id", "coverage_type", "area", "status"])
    frame["peril_id"] = frame["peril_id"].astype("category")
    return frame


def _position(order: list[int]) -> pd.Series:
    return pd.Series(np.arange(len(order)), index=order)


def _expected(frame: pd.DataFrame) -> list[pd.DataFrame]:
    ok = frame["status"] == "success"
    return [frame[ok], frame[~ok]]


def _same(got: list[pd.DataFrame] | None, want: list[pd.DataFrame]) -> None:
    assert got is not None
    for a, b in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(list(range(1, 13))),
    cuts=st.sets(st.integers(1, 11), max_size=4),
    failing=st.sets(st.integers(1, 12), max_size=3),
)
def test_merge_gives_the_one_call_order(
    order: list[int], cuts: set[int], failing: set[int]
) -> None:
    """The file lists locations in ``order``; pieces are runs of sorted loc_ids."""
    position = _position(order)
    ids = sorted(order)
    bounds = [0, *sorted(cuts), len(ids)]
    pieces = []
    for a, b in itertools.pairwise(bounds):
        wanted = set(ids[a:b])
        pieces.append(_lookup([loc for loc in order if loc in wanted], failing))
    _same(keys_order.merge_pieces(pieces, position), _expected(_lookup(order, failing)))


def test_merge_keeps_categories() -> None:
    order = [3, 1, 2, 4]
    got = keys_order.merge_pieces([_lookup([3, 1]), _lookup([2, 4])], _position(order))
    assert got is not None
    assert isinstance(got[0]["peril_id"].dtype, pd.CategoricalDtype)


def test_merge_declines_row_major_results() -> None:
    """A lookup that lists each location's keys together (row-major): not block-shaped."""

    def row_major(locs: list[int]) -> pd.DataFrame:
        rows = [(loc, p, c, 0, "success") for loc in locs for p, c in BLOCKS]
        return pd.DataFrame(rows, columns=["loc_id", "peril_id", "coverage_type", "a", "status"])

    assert (
        keys_order.merge_pieces([row_major([1, 2]), row_major([3])], _position([1, 2, 3])) is None
    )


def test_merge_declines_rows_out_of_input_order() -> None:
    backwards = _lookup([1, 2]).iloc[::-1]
    assert keys_order.merge_pieces([backwards, _lookup([3])], _position([1, 2, 3])) is None


def test_merge_declines_blocks_no_piece_orders() -> None:
    a = pd.DataFrame(
        [(1, "WSS", 1, "success")], columns=["loc_id", "peril_id", "coverage_type", "status"]
    )
    b = pd.DataFrame(
        [(2, "WTC", 1, "success")], columns=["loc_id", "peril_id", "coverage_type", "status"]
    )
    assert keys_order.merge_pieces([a, b], _position([1, 2])) is None


def test_merge_declines_results_without_its_columns() -> None:
    frame = pd.DataFrame({"locid": [1], "perilid": ["WSS"]})
    assert keys_order.merge_pieces([frame, frame], _position([1])) is None
