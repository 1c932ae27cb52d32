"""A model registered again with different data between two runs on the same warm worker.

The exactness suite's warm-worker sequence (``tests/integration/test_oracle_warm_worker.py``:
re-registration with new data, another footprint set, the first run's folder deleted, each
run's outputs against oasislmf's own run), run here too, on a Redis of its own, so that the
fault suite holds every fault a user can bring.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oasis_keda.runtime.embedded_redis import EmbeddedRedis
from tests.integration.test_oracle_warm_worker import (
    test_one_warm_worker_computes_each_analysis_on_its_own_model_files as warm_worker_sequence,
)

pytestmark = pytest.mark.timeout(1800)


def test_a_model_registered_again_on_a_warm_worker(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    warm_worker_sequence(own_redis.url, tmp_path)
