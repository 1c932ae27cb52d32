"""What the end-to-end benchmarks compute from a stage (``bench/local_stack.py``,
``bench/bench_chaz.py``), without running one.

Covers: serial fraction, parallel efficiency and chunk spread from sub-task busy seconds;
the peak memory watch sees memory this process takes and frees inside its window; the
benchmark's sizes (CHAZ at scale 1, events scaled on top, bad scales refused); the head of
a CSV file keeps its header; the cold-start figures in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import bench_chaz
from bench.local_stack import RssWatch, StageTime


def _stage(chunks: tuple[float, ...], serial: float, wall: float, alone: float = 0.0) -> StageTime:
    return StageTime(
        wall_s=wall,
        chunks_s=0.0,
        workers=2,
        worker_cpu_s=0.0,
        busy_cores=0.0,
        chunk_busy_s=chunks,
        serial_busy_s=serial,
        alone_s=alone,
    )


def test_stage_measures_from_busy_seconds() -> None:
    stage = _stage((2.0, 2.0, 4.0), serial=2.0, wall=6.0, alone=3.0)
    assert stage.busy_s == 10.0
    assert stage.serial_fraction == pytest.approx(0.3)  # seconds alone over busy seconds
    assert stage.efficiency(2) == pytest.approx(10.0 / 12.0)
    assert stage.efficiency(1) == pytest.approx(10.0 / 6.0)
    assert stage.spread == pytest.approx(2.0)
    empty = _stage((), serial=0.0, wall=1.0)
    assert (empty.serial_fraction, empty.spread) == (0.0, 0.0)


def test_rss_watch_sees_a_peak_inside_its_window() -> None:
    pid = os.getpid()
    with RssWatch([pid]) as watch:
        block = bytearray(200 * 1024 * 1024)  # touched: resident
        block[::4096] = b"x" * len(block[::4096])
        del block
    assert watch.peaks[pid] - watch.starts[pid] >= 150 * 1024 * 1024


def test_sizes() -> None:
    assert bench_chaz.sizes(1.0) == (85_803, 38_127)
    assert bench_chaz.sizes(1.0, 0.1) == (85_803, 3_813)
    assert bench_chaz.sizes(0.0001, 0.0001) == (20, 10)  # never below the warm-up rows
    for bad in (0.0, -1.0, 1.5):
        with pytest.raises(ValueError, match="scale"):
            bench_chaz.sizes(bad)
        with pytest.raises(ValueError, match="event scale"):
            bench_chaz.sizes(1.0, bad)


def test_head_rows_keeps_the_header(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,2\n3,4\n5,6\n", encoding="utf-8")
    head = bench_chaz.head_rows(source, 2, tmp_path / "out.csv")
    assert head.read_text(encoding="utf-8") == "a,b\n1,2\n3,4\n"


def test_cold_start_line() -> None:
    figures = {
        "penalty_s": 6.25,
        "first_subtask": "prepare-losses-generation-directory",
        "cold_subtask_s": 7.0,
        "warm_subtask_s": 0.75,
        "chunk_penalty_s": 1.5,
        "stage_penalty_s": 8.0,
    }
    line = bench_chaz.format_cold_start(figures)
    assert line.startswith("6.2 s (first sub-task `prepare-losses-generation-directory`")
    assert "7.0 s cold, 0.8 s warm" in line and "+1.5 s" in line and "+8.0 s" in line
