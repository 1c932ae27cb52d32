"""Where the optional reference data (``../shared`` beside the repository) lives.

Tests that use it skip when it is absent; ``OASIS_KEDA_SHARED_DIR`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DIR = Path(
    os.environ.get("OASIS_KEDA_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared"
)
PIWIND = SHARED_DIR / "piwind"
KEDA_CRDS = SHARED_DIR / "keda-crds"
