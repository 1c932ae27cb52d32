"""The what-if simulator: a workload replayed against scaling configurations on a simulated
clock, with the decision code and the KEDA + HPA arithmetic the real system runs.

:mod:`.workload` reads, writes and generates workloads; :mod:`.export` builds one from the
records of past analyses; :mod:`.policies` holds the policies compared (ours, KEDA's
Redis list-length rule, the Oasis worker controller's); :mod:`.engine` runs the clock;
:mod:`.results` reports. docs/SIMULATOR.md describes the model and the file format.
"""

from __future__ import annotations

from oasis_keda.runtime.simulate.engine import simulate
from oasis_keda.runtime.simulate.policies import Configuration, parse_configuration
from oasis_keda.runtime.simulate.results import SimResult, Step
from oasis_keda.runtime.simulate.sim_settings import SimSettings
from oasis_keda.runtime.simulate.workload import Workload

__all__ = [
    "Configuration",
    "SimResult",
    "SimSettings",
    "Step",
    "Workload",
    "parse_configuration",
    "simulate",
]
