"""Merging the GUL and FM parts of the input files into one directory.

Covers: the merged directory holds every file of both parts (sub-folders too), a file both
parts wrote once; the parts are gone afterwards and a second merge (a redelivered last
step) leaves the directory as it is; a missing part, no parts and no merged files, or a
file the two parts wrote differently, are refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import TransientError
from worker.input_files import PARTS, merge_parts, part_dir


def _parts(root: Path) -> tuple[Path, list[Path]]:
    inputs = root / "inputs"
    gul, fm = (part_dir(inputs, p) for p in PARTS)
    for folder, files in (
        (gul, {"items.bin": b"i", "location.parquet": b"loc"}),
        (fm, {"fm_xref.bin": b"x", "location.parquet": b"loc", "RI_1/fm_profile.bin": b"r"}),
    ):
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    return inputs, [gul, fm]


def test_parts_merge_into_one_directory(tmp_path: Path) -> None:
    inputs, parts = _parts(tmp_path)
    merge_parts(parts, inputs)
    found = {str(p.relative_to(inputs)): p.read_bytes() for p in inputs.rglob("*") if p.is_file()}
    assert found == {
        "items.bin": b"i",
        "location.parquet": b"loc",
        "fm_xref.bin": b"x",
        "RI_1/fm_profile.bin": b"r",
    }
    assert not any(p.exists() for p in parts)
    merge_parts(parts, inputs)  # again: nothing to do
    assert (inputs / "items.bin").read_bytes() == b"i"


def test_missing_or_disagreeing_parts_are_refused(tmp_path: Path) -> None:
    inputs, parts = _parts(tmp_path)
    with pytest.raises(TransientError, match="missing"):
        merge_parts([*parts, part_dir(inputs, "all")], inputs)
    (parts[1] / "location.parquet").write_bytes(b"other")
    with pytest.raises(RuntimeError, match="location.parquet"):
        merge_parts(parts, inputs)
    empty = tmp_path / "empty" / "inputs"
    empty.mkdir(parents=True)
    with pytest.raises(TransientError, match="none of the parts"):
        merge_parts([part_dir(empty, p) for p in PARTS], empty)
