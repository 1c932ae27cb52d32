"""The worker's background warm-up: tasks wait only for the stages their step needs, and
the readiness file exists only while Celery consumes and every stage is done."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from oasis_keda.core.stages import SPECS
from worker import warmup
from worker.warmup import STAGES, STEP_NEEDS, WarmUp, WarmUpError


class Gate:
    """An importer that holds on one module until released, and can fail another."""

    def __init__(self, hold: str, fail: str = "") -> None:
        self.hold, self.fail = hold, fail
        self.release = threading.Event()
        self.imported: list[str] = []

    def __call__(self, name: str) -> object:
        if name == self.hold:
            assert self.release.wait(10)
        if name == self.fail:
            raise ImportError(f"no module {name}")
        self.imported.append(name)
        return object()


def _warm(tmp_path: Path, gate: Gate) -> WarmUp:
    stages = {"oasislmf": ("a", "b"), "tools": ("c",)}
    return WarmUp(stages=stages, ready_file=tmp_path / "ready", importer=gate)


def test_a_step_waits_for_its_stages_only(tmp_path: Path) -> None:
    gate = Gate(hold="c")
    warm = _warm(tmp_path, gate)
    warm.start()
    warm.wait_for(("oasislmf",), timeout_s=10)  # done although "tools" is held
    assert gate.imported == ["a", "b"]
    with pytest.raises(WarmUpError, match="not done"):
        warm.wait_for(("tools",), timeout_s=0.2)
    assert not warm.warm
    gate.release.set()
    warm.wait_for(("tools",), timeout_s=10)
    assert warm.warm and gate.imported == ["a", "b", "c"]


def test_ready_only_when_consuming_and_warm(tmp_path: Path) -> None:
    gate = Gate(hold="c")
    warm = _warm(tmp_path, gate)
    ready = tmp_path / "ready"
    ready.write_text("left by a killed worker")
    warm.start()
    assert not ready.exists()  # cleared at start
    warm.consuming(True)  # Celery is up, the imports are not
    assert not warm.ready and not ready.exists()
    gate.release.set()
    warm.wait_all(timeout_s=10)
    for _ in range(100):  # the thread writes it right after its last stage
        if ready.exists():
            break
        threading.Event().wait(0.02)
    assert warm.ready and ready.exists()
    warm.consuming(False)  # the warm shutdown
    assert not warm.ready and not ready.exists()


def test_warm_before_consuming_is_not_ready(tmp_path: Path) -> None:
    warm = _warm(tmp_path, Gate(hold=""))
    warm.start()
    warm.wait_all(timeout_s=10)
    assert warm.warm and not warm.ready and not (tmp_path / "ready").exists()
    warm.consuming(True)
    assert (tmp_path / "ready").exists()


def test_a_failed_stage_fails_the_steps_that_need_it_and_is_never_ready(tmp_path: Path) -> None:
    warm = _warm(tmp_path, Gate(hold="", fail="c"))
    warm.start()
    warm.wait_all(timeout_s=10)
    warm.consuming(True)
    assert not warm.ready and not (tmp_path / "ready").exists()  # a broken worker
    warm.wait_for(("oasislmf",))
    with pytest.raises(WarmUpError, match="tools failed: ImportError: no module c"):
        warm.wait_for_step("generate-losses-chunk")
    assert warm.wait_for_step("cleanup-losses-generation") >= 0  # needs nothing


def test_every_step_of_the_stages_says_what_it_needs() -> None:
    for stage in ("inputs", "losses"):
        spec = SPECS[stage]
        for step in (*spec.before, spec.chunk, *spec.after):
            assert step.slug in STEP_NEEDS, step.slug
            assert set(STEP_NEEDS[step.slug]) <= set(STAGES)


def test_without_start_nothing_waits() -> None:
    assert warmup.current().wait_for_step("generate-losses-chunk") < 1.0
