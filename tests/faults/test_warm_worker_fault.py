"""A model registered again with different data between two runs on the same warm
worker: each analysis computes on the model files registered at its time, and equals
oasislmf's own run of them. The case lives in the exactness suite
(``tests/integration/test_oracle_warm_worker.py``); the fault suite runs it as one of its
faults."""

from __future__ import annotations

import pytest

from tests.integration.test_oracle_warm_worker import (
    test_one_warm_worker_computes_each_analysis_on_its_own_model_files as test_model_registered_again_on_a_warm_worker,
)

pytestmark = pytest.mark.timeout(1800)

__all__ = ["test_model_registered_again_on_a_warm_worker"]
