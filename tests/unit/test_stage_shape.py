"""The shape of a stage: steps after the chunks that run side by side.

Covers: the inputs stage's GUL and FM input-file steps form one group after collect-keys
and before the finishing step; the canvas sends them as a chord whose body is that step
(each member given collect-keys' result); a stage whose side-by-side steps are not
neighbours, or include the first or last step after the chunks, is refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from celery.canvas import Signature, _chain, _chord, group

from oasis_keda.core.stages import INPUTS_SPEC, LOSSES_SPEC, StageSpec, step
from task_controller.canvas import build_canvas, plan_subtasks


def _chords(sig: Signature) -> list[_chord]:
    found: list[_chord] = []
    if isinstance(sig, _chord):
        found.append(sig)
        for member in sig.tasks:
            found += _chords(member)
        found += _chords(sig.body)
    elif isinstance(sig, _chain | group):
        for member in sig.tasks:
            found += _chords(member)
    return found


def test_inputs_write_their_gul_and_fm_files_side_by_side() -> None:
    groups = [[s.slug for s in g] for g in INPUTS_SPEC.after_groups()]
    assert groups == [
        ["collect-keys"],
        ["write-input-files", "write-fm-input-files"],
        ["cleanup-input-generation"],
    ]
    assert [[s.slug for s in g] for g in LOSSES_SPEC.after_groups()] == [
        [s.slug] for s in LOSSES_SPEC.after
    ]


def test_the_canvas_sends_side_by_side_steps_as_a_chord() -> None:
    app = Celery("shape")
    planned = plan_subtasks(INPUTS_SPEC, 3)
    job: Any = {"queue": "q", "num_chunks": 3}
    canvas = build_canvas(app, INPUTS_SPEC, job, planned, list(range(len(planned))), priority=4)
    chords = _chords(canvas)
    names = [
        (sorted(t.task.rsplit(".", 1)[1] for t in c.tasks), c.body.task.rsplit(".", 1)[1])
        for c in chords
    ]
    assert (["write_fm_input_files", "write_input_files"], "cleanup_input_generation") in names
    (writes,) = [c for c in chords if c.body.task.endswith("cleanup_input_generation")]
    for member in writes.tasks:  # given collect-keys' result: not immutable, no extra args
        assert not member.immutable and len(member.args) == 2


@pytest.mark.parametrize(
    "side",
    [{"a", "c"}, {"a", "b"}, {"c", "d"}, {"b", "nope"}],
    ids=["not-neighbours", "first", "last", "unknown"],
)
def test_bad_side_by_side_steps_are_refused(side: set[str]) -> None:
    with pytest.raises(ValueError, match="side_by_side"):
        StageSpec(
            stage="t",
            before=(step("p", "P"),),
            chunk=step("k", "K"),
            after=(step("a", "A"), step("b", "B"), step("c", "C"), step("d", "D")),
            side_by_side=frozenset(side),
            allowed_from=frozenset(),
            queued="q",
            started="s",
            done="d",
            error="e",
            cancelled="c",
        )
