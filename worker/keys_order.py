"""Which locations each lookup chunk takes, and how chunk results merge in oasislmf's order.

The order of the keys file is not cosmetic: oasislmf numbers items, coverages and the
whole financial structure in the order keys appear, so another order writes other input
files, and other float32 sums. oasislmf itself runs the lookup over *partitions*: the
sorted distinct ``loc_id`` values split into ``Q`` equal runs (``Q`` from its own
``resolve_partition_count``, 1 for small portfolios or without multiprocessing), the lookup
called once per partition over that partition's rows in file order, and the results
written partition after partition. (With several partitions, oasislmf writes them in the
order its processes finish; partition order is the order it gets when they finish in
turn, and the one we write.)

So a chunk never mixes partitions: it takes whole partitions when there are at least as
many partitions as chunks, and a share of one partition otherwise. A partition looked up
whole is already in oasislmf's order. A partition split over several chunks is merged with
:func:`merge_pieces`, which relies on how lookups order their results: in blocks (for the
built-in lookup, one per peril and coverage type, failures by status), each block in the
order of the input rows. It checks that every piece has that shape and that the pieces
agree on the order of the blocks; when they do not, it returns None and the caller looks
the whole partition up again itself (exact, only slower). docs/EXACTNESS.md has the proof.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

#: Status of a successful key (oasislmf.utils.status.OASIS_KEYS_STATUS['success']['id']).
SUCCESS = "success"
#: Columns that name a key's block, for successes and for failures.
SUCCESS_BLOCK = ("peril_id", "coverage_type")
FAILURE_BLOCK = ("peril_id", "coverage_type", "status")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Piece:
    """Part ``part`` of ``parts`` of oasislmf partition ``partition`` (0-based)."""

    partition: int
    part: int
    parts: int

    @property
    def name(self) -> str:
        return f"p{self.partition}-{self.part}-of-{self.parts}"


def chunk_pieces(partitions: int, chunk_index: int, num_chunks: int) -> list[Piece]:
    """The pieces of chunk k of N (1-based) over ``partitions`` oasislmf partitions."""
    if partitions < 1 or num_chunks < 1 or not 1 <= chunk_index <= num_chunks:
        raise ValueError(f"chunk {chunk_index} of {num_chunks} over {partitions} partitions")
    k = chunk_index - 1
    if num_chunks <= partitions:
        groups = np.array_split(np.arange(partitions), num_chunks)
        return [Piece(partition=int(p), part=0, parts=1) for p in groups[k]]
    shares = np.array_split(np.arange(num_chunks), partitions)
    for p, share in enumerate(shares):
        if k in share:
            return [Piece(partition=p, part=int(k - share[0]), parts=len(share))]
    raise AssertionError("unreachable: every chunk belongs to a share")


def piece_loc_ids(unique_ids: np.ndarray[Any, Any], partitions: int, piece: Piece) -> Any:
    """The distinct ``loc_id`` values of a piece (oasislmf's split, then ours)."""
    partition = np.array_split(unique_ids, partitions)[piece.partition]
    return np.array_split(partition, piece.parts)[piece.part]


def _merge_chains(chains: Sequence[list[Any]]) -> list[Any] | None:
    """The one block order every chain follows, or None if there is none or several."""
    after: dict[Any, set[Any]] = {}
    indegree: dict[Any, int] = {}
    for chain in chains:
        for block in chain:
            after.setdefault(block, set())
            indegree.setdefault(block, 0)
        for a, b in itertools.pairwise(chain):
            if b not in after[a]:
                after[a].add(b)
                indegree[b] += 1
    order: list[Any] = []
    ready = [b for b, n in indegree.items() if n == 0]
    while ready:
        if len(ready) > 1:
            return None  # two blocks no piece orders: ambiguous
        block = ready.pop()
        order.append(block)
        for nxt in after[block]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return order if len(order) == len(indegree) else None


def _block_codes(frame: pd.DataFrame, block: Sequence[str]) -> np.ndarray[Any, Any]:
    """Each row's block as a number, blocks numbered in the order they first appear."""
    groups = frame.groupby(list(block), sort=False, dropna=False, observed=True)
    return np.asarray(groups.ngroup().to_numpy(), dtype=np.int64)


def _merge_kind(
    frames: Sequence[pd.DataFrame], block: Sequence[str], position: pd.Series
) -> pd.DataFrame | None:
    present = [f for f in frames if not f.empty]
    if not present:
        return frames[0].iloc[0:0] if frames else None
    merged = concat(present)
    codes = _block_codes(merged, block)
    pos = merged["loc_id"].map(position).to_numpy()
    chains = []
    bounds = np.cumsum([0, *(len(f) for f in present)])
    for start, end in itertools.pairwise(bounds.tolist()):
        piece_codes, piece_pos = codes[start:end], pos[start:end]
        same = np.diff(piece_codes) == 0
        chain = piece_codes[np.concatenate(([0], np.flatnonzero(~same) + 1))]
        if len(np.unique(chain)) != len(chain):
            return None  # a block comes back after another
        # within a block, rows follow the input rows
        if same.any() and (np.diff(piece_pos)[same] < 0).any():
            return None
        chains.append(chain.tolist())
    order = _merge_chains(chains)
    if order is None:
        return None
    rank = np.empty(int(codes.max()) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return merged.iloc[np.lexsort((pos, rank[codes]))]


def merge_pieces(frames: Sequence[pd.DataFrame], position: pd.Series) -> list[pd.DataFrame] | None:
    """Lookup results of the pieces of one partition, in the order one lookup call over the
    whole partition gives: [successes, failures], or None when that order cannot be shown.

    ``position`` maps ``loc_id`` to the row's position in the file.
    """
    needed = set(FAILURE_BLOCK) | {"loc_id"}
    if any(not needed <= set(f.columns) for f in frames) or not position.index.is_unique:
        return None
    ok = [f["status"] == SUCCESS for f in frames]
    successes = _merge_kind(
        [f[m] for f, m in zip(frames, ok, strict=True)], SUCCESS_BLOCK, position
    )
    failures = _merge_kind(
        [f[~m] for f, m in zip(frames, ok, strict=True)], FAILURE_BLOCK, position
    )
    if successes is None or failures is None:
        return None
    return [successes, failures]


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one lookup stacked, categorical columns kept categorical."""
    from pandas.api.types import union_categoricals  # type: ignore[import-untyped]

    merged = pd.concat(frames, ignore_index=True)
    for column in frames[0].columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype) and not isinstance(
            merged[column].dtype, pd.CategoricalDtype
        ):
            merged[column] = union_categoricals([f[column] for f in frames]).astype("category")
    return merged
