"""Scaling on planned work through the local runtime: the demo's workload with
``count_planned`` on, KEDA and the HPA as ``oasis-keda up`` runs them.

Checks, from the autoscaler's own samples: while the analyses run, the replica count is
never lowered and then raised again within the HPA's scale-down stabilization window (no
flapping at a stage boundary); the live worker processes never exceed ``worker_count_max``;
every analysis completes, nothing is killed by a scale-down, and the workers end at 0.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from oasis_keda.runtime.demo.common import MODEL_ID, DemoSettings
from oasis_keda.runtime.demo.driving import run_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_planned_work_scales_without_flapping(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OASIS_KEDA_REDIS_URL"}
    env["OASIS_KEDA_STORAGE_DIR"] = str(tmp_path / "storage")
    autoscaling = AutoscalerSettings()
    config = DemoSettings(out_dir=tmp_path, count_planned=True)
    result = run_demo(config, env=env, console=Console(file=io.StringIO()), autoscaling=autoscaling)
    assert result.ok, result
    assert result.peak_workers <= config.max_workers  # live processes, draining ones included
    assert result.interrupted_subtasks == 0 and result.final_workers == 0

    samples = [
        json.loads(line)
        for line in (tmp_path / "storage" / "run" / "autoscaler-samples.jsonl")
        .read_text()
        .splitlines()
    ]
    series = [(s["at"], s["desired"], s["actual"]) for s in samples if s["model_id"] == MODEL_ID]
    assert max(actual for _, _, actual in series) <= config.max_workers
    window = autoscaling.scale_down_stabilization_s
    lowered: float | None = None
    previous = None
    flaps = []
    for at, desired, _ in series:
        if previous is not None and desired < previous:
            lowered = at
        elif (
            previous is not None
            and desired > previous
            and lowered is not None
            and at - lowered < window
        ):
            flaps.append((lowered, at, previous, desired))
        previous = desired
    # the last scale-down (to 0 after the work) is never followed by a rise
    assert not flaps, flaps
