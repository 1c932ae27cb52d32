"""Opt-in end-to-end run on minikube: ``pytest -m e2e tests/e2e``.

Wraps tests/e2e/minikube.sh (which see): KEDA scales the built-in model 0 -> N -> 0 around
a chunked analysis that completes. Deselected by default (``-m "not e2e"`` in pyproject);
skipped where minikube or kubectl is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("minikube.sh")

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(3600)
def test_minikube_scales_zero_to_n_to_zero_and_the_analysis_completes() -> None:
    missing = [tool for tool in ("minikube", "kubectl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not on PATH: {', '.join(missing)}")
    done = subprocess.run(["bash", str(SCRIPT)], check=False, timeout=3500)
    assert done.returncode == 0, "tests/e2e/minikube.sh failed (its output is above)"
