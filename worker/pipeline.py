"""How a loss chunk's pipeline runs: oasislmf's bash script, or the same tools in-process.

oasislmf writes each chunk as a bash script: a dozen Python tools (``evepy | gulmc | fmpy``,
``summarypy``, ``eltpy``, ``pltpy``...) joined by FIFOs, each a fresh process that imports
numba and loads its cached code. Here that start-up is most of a small chunk's time. The
in-process mode lets oasislmf generate the very same script, then runs its commands in
this process (see :mod:`worker.script`), in data-flow order with files in place of FIFOs,
so the tools' compiled code is loaded once per worker. The output step is run the same
way. Anything the interpreter does not
recognise falls back to running the script with bash, as oasislmf does.

``OASIS_KEDA_PIPELINE=bash`` forces oasislmf's own way.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

PIPELINE_ENV = "OASIS_KEDA_PIPELINE"


def _mode() -> str:
    mode = os.environ.get(PIPELINE_ENV, "inprocess")
    return mode if mode in ("inprocess", "bash") else "inprocess"


def _runner() -> Any:
    """A stand-in for oasislmf's runner module whose run_* interpret the script in-process."""
    from oasislmf.execution import runner as oasis_runner

    from worker import script

    class InProcessRunner:
        @staticmethod
        def run_analysis(**params: Any) -> Any:
            return script.run_analysis(params, fallback=oasis_runner.run_analysis)

        @staticmethod
        def run_outputs(**params: Any) -> Any:
            return script.run_outputs(params, fallback=oasis_runner.run_outputs)

    return InProcessRunner


def run_partial(kwargs: dict[str, Any], *, process_number: int, max_process_id: int) -> None:
    """oasislmf's ``generate_losses_partial`` for process k of N."""
    from oasislmf.computation.generate.losses import GenerateLossesPartial

    step_cls: Any = GenerateLossesPartial
    if _mode() == "inprocess":

        class InProcessPartial(GenerateLossesPartial):  # type: ignore[misc]
            def _get_model_runner(self) -> tuple[Any, None]:
                return _runner(), None

        step_cls = InProcessPartial
    step_cls(**kwargs, process_number=process_number, max_process_id=max_process_id).run()


def run_outputs(kwargs: dict[str, Any], *, max_process_id: int) -> None:
    """oasislmf's ``generate_losses_output`` over N merged chunks."""
    from oasislmf.computation.generate.losses import GenerateLossesOutput

    step_cls: Any = GenerateLossesOutput
    if _mode() == "inprocess":

        class InProcessOutput(GenerateLossesOutput):  # type: ignore[misc]
            def _get_model_runner(self) -> tuple[Any, None]:
                return _runner(), None

        step_cls = InProcessOutput
    step_cls(**kwargs, max_process_id=max_process_id).run()
