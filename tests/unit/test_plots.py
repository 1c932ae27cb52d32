"""The demo's pictures from synthetic records (oasis_keda.runtime.plots).

Covers: step kinds from slugs (chunk numbers removed), outstanding sub-tasks over time,
the timeline and workers-over-time PNGs are written (valid PNG, sensible size), and empty
inputs are refused with a clear error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from oasis_keda.runtime.autoscaler import ScalingSample
from oasis_keda.runtime.plots import (
    Span,
    outstanding_at,
    plot_timeline,
    plot_workers,
    short_worker,
    step_kind,
)

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def synthetic_spans() -> list[Span]:
    spans = []
    workers = ["model-a.101@host", "model-a.102@host", "model-a.103@host"]
    for analysis in (1, 2, 3):
        base = (analysis - 1) * 4.0
        for chunk in range(1, 7):
            worker = workers[(chunk + analysis) % 3]
            start = base + chunk * 1.5
            kind = "lookup-chunk" if chunk <= 2 else "generate-losses-chunk"
            spans.append(
                Span(
                    analysis,
                    "inputs" if chunk <= 2 else "losses",
                    kind,
                    worker,
                    at(0),
                    at(start),
                    at(start + 1.2),
                    "COMPLETED",
                )
            )
        spans.append(
            Span(
                analysis,
                "losses",
                "generate-losses-output",
                workers[0],
                at(0),
                at(base + 11),
                at(base + 12),
                "COMPLETED",
            )
        )
    return spans


@pytest.mark.parametrize(
    ("slug", "kind"),
    [
        ("generate-losses-chunk-3", "generate-losses-chunk"),
        ("lookup-chunk-12-of-40", "lookup-chunk"),
        ("prepare-input-generation-params", "prepare-input-generation-params"),
        ("generate-losses-output", "generate-losses-output"),
    ],
)
def test_step_kind_drops_chunk_numbers(slug: str, kind: str) -> None:
    assert step_kind(slug) == kind


def test_short_worker_names() -> None:
    assert short_worker("model-a.1234@host") == "pid 1234"
    assert short_worker("celery@box") == "celery"


def test_outstanding_counts_queued_and_running() -> None:
    spans = synthetic_spans()
    assert outstanding_at(spans, at(-1)) == 0
    assert outstanding_at(spans, at(0)) == len(spans)
    assert outstanding_at(spans, at(100)) == 0


def test_timeline_png(tmp_path: Path) -> None:
    out = plot_timeline(synthetic_spans(), tmp_path / "timeline.png")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def test_workers_png(tmp_path: Path) -> None:
    t = T0.replace(tzinfo=dt.UTC).timestamp()
    desired = [0, 1, 3, 3, 3, 2, 1, 1, 0, 0]
    samples = [
        ScalingSample(
            at=t + i * 2.0,
            model_id="m",
            metric=float(d),
            desired=d,
            actual=max(d, desired[i - 1] if i else 0),
            reason="x",
        )
        for i, d in enumerate(desired)
    ]
    out = plot_workers(samples, synthetic_spans(), tmp_path / "workers.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_empty_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sub-task"):
        plot_timeline([], tmp_path / "t.png")
    with pytest.raises(ValueError, match="no autoscaler samples"):
        plot_workers([], [], tmp_path / "w.png")
