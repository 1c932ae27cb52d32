"""The sub-task timeline of one analysis, read from the records database.

Backs ``oasis-keda analyses timeline ID --out FILE.png``: by default the latest run of each
stage (inputs, then losses), or one run by number.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from oasis_keda.core.errors import OasisKedaError
from oasis_keda.core.settings import Settings
from oasis_keda.core.store import Analysis, SubTask, make_engine, make_session_factory
from oasis_keda.runtime.plots import Span, plot_timeline, spans_from_records


class TimelineError(OasisKedaError):
    """Nothing to draw for the analysis asked for."""


def analysis_spans(session: Session, analysis_id: int, run_number: int | None = None) -> list[Span]:
    """Spans of one run, or of the latest run of each stage when ``run_number`` is None."""
    if session.get(Analysis, analysis_id) is None:
        raise TimelineError(f"analysis {analysis_id} does not exist")
    subs = list(
        session.scalars(
            select(SubTask).where(SubTask.analysis_id == analysis_id).order_by(SubTask.id)
        )
    )
    if run_number is not None:
        subs = [s for s in subs if s.run_number == run_number]
    else:
        latest: dict[str, int] = {}
        for s in subs:
            latest[s.stage] = max(latest.get(s.stage, 0), s.run_number)
        subs = [s for s in subs if s.run_number == latest[s.stage]]
    if not subs:
        which = f"run {run_number}" if run_number is not None else "any run"
        raise TimelineError(f"analysis {analysis_id} has no sub-tasks in {which}")
    return spans_from_records(subs)


def draw_analysis_timeline(
    settings: Settings, analysis_id: int, out: Path, *, run_number: int | None = None
) -> Path:
    """Write the timeline PNG of an analysis; returns its path."""
    sessions = make_session_factory(make_engine(settings.effective_database_url))
    with sessions() as session:
        spans = analysis_spans(session, analysis_id, run_number)
    try:
        return plot_timeline(spans, out, title=f"Sub-task timeline of analysis {analysis_id}")
    except ValueError as exc:
        raise TimelineError(f"analysis {analysis_id}: {exc}") from exc
