"""oasislmf's loss-run preparation, the same files, built faster.

Preparing a loss run, oasislmf builds read-only structures once for the whole run and
saves them as ``.npy`` files, while the analysis's workers wait. Two of its helpers do
per-record work in Python, which at 86,000 locations took 5 of the 7 seconds:

- gulmc's structures: twice the items table is widened by two columns with numpy's
  ``recfunctions.merge_arrays``, which copies record by record. For what that step passes
  (1-D structured arrays of one length, flattened, no mask) the result is the table with
  the new columns after the old ones: :func:`merge_arrays` builds the same dtype and copies
  whole columns; anything else goes to numpy's own.
- the summary objects: ``get_summary_xref_info`` walks the summary cross-reference row by
  row to find each summary set's largest summary id and each item's summary id;
  :func:`summary_xref_info` computes the same arrays with whole-array operations (an item
  listed twice in a set keeps its last summary id, as in the loop).

:func:`install` points oasislmf at them. ``tests/integration/test_loss_prepare.py`` checks
that the prepared run's structure and summary files are byte for byte those of
``oasislmf model run`` on the same inputs, and the functions against oasislmf's own.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.lib.recfunctions as rfn


def _flat_columns(arrays: Sequence[Any]) -> list[tuple[str, np.dtype[Any]]] | None:
    """The merged table's columns, or None when the fast copy does not apply."""
    if len(arrays) < 2 or len({getattr(a, "shape", None) for a in arrays}) != 1:
        return None
    columns: list[tuple[str, np.dtype[Any]]] = []
    for a in arrays:
        if type(a) is not np.ndarray or a.ndim != 1 or not a.dtype.names:
            return None
        for name in a.dtype.names:
            dtype = a.dtype.fields[name][0]
            if dtype.names or dtype.subdtype:
                return None
            columns.append((name, dtype))
    if len({name for name, _ in columns}) != len(columns):
        return None
    return columns


def merge_arrays(
    seqarrays: Any,
    fill_value: Any = -1,
    flatten: bool = False,
    usemask: bool = False,
    asrecarray: bool = False,
) -> Any:
    """numpy's ``recfunctions.merge_arrays``, column by column where that is the same."""
    columns = None
    if flatten and not usemask and not asrecarray and isinstance(seqarrays, tuple | list):
        columns = _flat_columns(seqarrays)
    if columns is None:
        return rfn.merge_arrays(
            seqarrays,
            fill_value=fill_value,
            flatten=flatten,
            usemask=usemask,
            asrecarray=asrecarray,
        )
    out = np.empty(seqarrays[0].shape, dtype=np.dtype(columns))
    for a in seqarrays:
        for name in a.dtype.names:
            out[name] = a[name]
    return out


def summary_xref_info(
    summary_xref: Any, summary_sets_id: Any, summary_set_id_to_summary_set_index: Any
) -> tuple[Any, Any]:
    """oasislmf's ``get_summary_xref_info``: per summary set, the running total of the
    largest summary ids; per item and set, the summary id (``null_index`` where none)."""
    from oasislmf.pytools.common.data import null_index, oasis_int

    set_index = summary_set_id_to_summary_set_index[summary_xref["summaryset_id"]]
    valid = set_index != null_index
    set_index = set_index[valid].astype(np.intp)
    summary_id = summary_xref["summary_id"][valid]
    item_id = summary_xref["item_id"][valid].astype(np.intp)
    loss_ptr = np.zeros(summary_sets_id.shape[0] + 1, oasis_int)
    np.maximum.at(loss_ptr, set_index + 1, summary_id)
    loss_ptr = np.cumsum(loss_ptr, dtype=oasis_int)
    max_item_id = max(0, int(item_id.max())) if item_id.size else 0
    sets = summary_sets_id.shape[0]
    by_item = np.full((max_item_id + 1, sets), null_index, oasis_int)
    # the last row of an (item, set) pair wins, as in oasislmf's loop
    cells = item_id * sets + set_index
    _, last_from_end = np.unique(cells[::-1], return_index=True)
    last = cells.size - 1 - last_from_end
    by_item[item_id[last], set_index[last]] = summary_id[last]
    return loss_ptr, by_item


class _RecFunctions(types.ModuleType):
    """numpy's ``recfunctions`` with :func:`merge_arrays` replaced."""

    def __getattr__(self, name: str) -> Any:
        return getattr(rfn, name)


def install() -> None:
    """Point oasislmf's preparation at :func:`merge_arrays` and :func:`summary_xref_info`;
    safe to repeat."""
    from oasislmf.pytools.gulmc import structure
    from oasislmf.pytools.summary import manager

    if not isinstance(structure.rfn, _RecFunctions):
        shim = _RecFunctions("numpy.lib.recfunctions")
        shim.merge_arrays = merge_arrays  # type: ignore[attr-defined]
        structure.rfn = shim
    manager.get_summary_xref_info = summary_xref_info
