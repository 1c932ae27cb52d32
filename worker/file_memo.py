"""What a worker reads again and again, read once per file version.

A lookup chunk needs three things of the whole location file: every row's ``loc_id``, the
text of its own rows, and the OED schema its rows are checked against. At 86,000 locations
re-reading them took 0.37 s of a 2,000-row chunk's 0.52 s, paid by every chunk. A worker
runs many chunks of one portfolio, so each is kept here, keyed by the file's path, inode,
size and change times: a file written again is read again (stored portfolio files are
never rewritten in place; a rewrite of the same size within the file system's clock tick
is the one change this key can miss).

The values are shared: callers must not change them (arrays are returned read-only).
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Per kind of value, the most recent files kept (a worker serves a few portfolios at once).
KEEP = 4

_lock = threading.Lock()
_memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _version(path: Path) -> tuple[Any, ...]:
    st = os.stat(path)
    return os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def cached(kind: str, path: Path, build: Callable[[Path], T]) -> T:
    """``build(path)``, or its value from an earlier call on this version of the file."""
    key = (kind, *_version(path))
    with _lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]  # type: ignore[no-any-return]
    value = build(path)
    with _lock:
        _memo[key] = value
        same_kind = [k for k in _memo if k[0] == kind]
        for old in same_kind[:-KEEP]:
            del _memo[old]
    return value


def memoize_oed_schema() -> None:
    """Parse each OED schema JSON once per process (ods_tools parses it for every exposure
    it loads, about 0.1 s). The schema is only read after loading. Safe to call again."""
    from ods_tools.oed.oed_schema import OedSchema

    if getattr(OedSchema.from_json, "_oasis_keda_memo", False):
        return
    parse = OedSchema.from_json.__func__

    @functools.wraps(parse)
    def from_json(cls: type, oed_json: Any) -> Any:
        path = Path(oed_json)
        if cls is not OedSchema or not path.is_file():
            return parse(cls, oed_json)
        return cached("oed-schema", path, lambda p: parse(cls, oed_json))

    from_json._oasis_keda_memo = True  # type: ignore[attr-defined]
    OedSchema.from_json = classmethod(from_json)
