"""What the demo reads back from the records: progress per analysis and stage, and the AAL
from an analysis's outputs."""

from __future__ import annotations

import csv
import io
import re
import tarfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oasis_keda.core.store import Analysis, SubTask
from oasis_keda.runtime.demo.common import STAGES

_PALT = re.compile(r"(?:^|/)(\w+?)_S1_palt\.csv$")


def is_chunk(slug: str) -> bool:
    """Whether a sub-task is one chunk of a stage (its slug ends in ``-<n>``)."""
    return bool(re.search(r"-\d+$", slug))


def progress_rows(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """Per analysis: status, and per stage (done, total) sub-tasks."""
    rows = []
    for analysis_id in ids:
        analysis = session.get(Analysis, analysis_id)
        assert analysis is not None
        counts: dict[str, Counter[str]] = {stage: Counter() for stage in STAGES}
        for sub in session.scalars(select(SubTask).where(SubTask.analysis_id == analysis_id)):
            counts.setdefault(sub.stage, Counter())[sub.status] += 1
        rows.append({"id": analysis_id, "name": analysis.name, "status": analysis.status,
                     "counts": counts})  # fmt: skip
    return rows


def read_aal(outputs: Path) -> dict[str, float]:
    """AAL per perspective (gul, il, ...) from an analysis's outputs (their directory, or
    an outputs archive of an older run) ORD ALT files.

    The sample mean (SampleType 2) when present, else the analytical mean (SampleType 1),
    summed over the summary ids of summary set 1.
    """
    result: dict[str, float] = {}
    if outputs.is_dir():
        for path in sorted(outputs.rglob("*")):
            match = _PALT.search(str(path.relative_to(outputs)))
            if match is not None and path.is_file():
                with path.open(encoding="utf-8", newline="") as fh:
                    result[match.group(1)] = _mean_loss(fh)
        return result
    with tarfile.open(outputs) as tar:
        for member in tar.getmembers():
            match = _PALT.search(member.name)
            extracted = tar.extractfile(member) if match else None
            if match is None or extracted is None:
                continue
            result[match.group(1)] = _mean_loss(io.TextIOWrapper(extracted))
    return result


def _mean_loss(rows: Iterable[str]) -> float:
    by_type: dict[str, float] = {}
    for row in csv.DictReader(rows):
        kind = row.get("SampleType", "")
        by_type[kind] = by_type.get(kind, 0.0) + float(row.get("MeanLoss") or 0)
    return by_type.get("2", by_type.get("1", 0.0))
