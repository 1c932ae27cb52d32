"""Recorded sub-task rows for the simulator's export tests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from oasis_keda.core.store import Analysis, Portfolio, SubTask

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def row(
    analysis: int, stage: str, slug: str, start: float, end: float | None, *, run: int = 1
) -> SubTask:
    return SubTask(
        analysis_id=analysis,
        run_number=run,
        stage=stage,
        slug=slug,
        name=slug,
        queue_name="synth",
        status="COMPLETED" if end is not None else "STARTED",
        pending_time=at(start - 0.5 if slug.startswith("prepare-") else start - 0.1),
        start_time=at(start),
        end_time=None if end is None else at(end),
    )


def fill(session: Session) -> None:
    session.add(Portfolio(id=1, name="p"))
    for k in (1, 2, 3):
        session.add(Analysis(id=k, name=f"a{k}", portfolio_id=1, model_id="synth"))
    session.flush()
    inputs = "prepare-input-generation-params"
    session.add_all(
        [
            # analysis 1: an inputs run 1 (replaced by run 2), inputs run 2, then losses
            row(1, "inputs", inputs, 1.0, 9.0),
            row(1, "inputs", inputs, 10.0, 11.0, run=2),
            row(1, "inputs", "prepare-keys-file-1", 11.0, 13.0, run=2),
            row(1, "inputs", "prepare-keys-file-2", 11.0, 14.0, run=2),
            row(1, "inputs", "collect-keys", 14.0, 14.5, run=2),
            row(1, "losses", "prepare-losses-generation-directory", 16.0, 16.5, run=3),
            row(1, "losses", "generate-losses-chunk-1", 16.5, 19.5, run=3),
            row(1, "losses", "generate-losses-output", 19.5, 20.0, run=3),
            # analysis 2: inputs only, arriving 10 s after analysis 1's first run
            row(2, "inputs", inputs, 20.0, 21.0),
            row(2, "inputs", "prepare-keys-file-1", 21.0, 22.0),
            # analysis 3: a sub-task still running, so nothing complete
            row(3, "inputs", inputs, 5.0, None),
        ]
    )
