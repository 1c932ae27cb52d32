"""Before the stack starts: the synthetic model on disk, and oasislmf's numba tools compiled
once into the cache the workers read."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from oasis_keda.runtime.demo.common import DemoSettings
from oasis_keda.runtime.errors import LocalRuntimeError

#: File in the numba cache directory saying the demo's warm-up run filled it.
WARM_MARKER = ".oasis-keda-warm"
WARM_TIMEOUT_S = 1800.0


def write_model(config: DemoSettings) -> Path:
    """Write the synthetic model under the output directory."""
    from oasis_keda.runtime.synth import write_synthetic_model

    model_dir = config.out_dir / "synth-model"
    write_synthetic_model(
        model_dir,
        locations=config.locations,
        events=config.events,
        seed=1,
        footprint_density=None,  # the dense radius storms README's demo figures come from
    )
    return model_dir


def warm_numba_cache(model_dir: Path, env: dict[str, str], console: Console) -> float | None:
    """Compile oasislmf's numba tools once, before any worker runs (first run only).

    Several workers meeting a cold cache each compile the same tools at the same time,
    which on a small machine costs several times one compile. One ``oasislmf model run`` of
    the synthetic model (as the container build does) fills the cache the workers read
    (``NUMBA_CACHE_DIR``, else ``~/.cache/oasis-keda/numba``). Returns the seconds spent, or
    None when the cache was already warm.
    """
    from worker.oasis_env import NUMBA_CACHE_ENV, numba_cache_dir

    cache = numba_cache_dir(env)
    marker = cache / WARM_MARKER
    if marker.exists():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    console.print(
        f"first run: compiling oasislmf's numba tools once into {cache} (a few minutes) ..."
    )
    started = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="oasis-keda-warm-"))
    bin_dir = Path(sys.executable).parent  # the pipeline tools (gulmc, fmpy, ...) live here
    oasislmf = bin_dir / "oasislmf"
    argv = [str(oasislmf)] if oasislmf.exists() else [sys.executable, "-m", "oasislmf"]
    log = run_dir / "warm.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*argv, "model", "run", "--config", str(model_dir / "oasislmf.json"),
                 "--model-run-dir", str(run_dir / "run"),
                 # one process per tool: parallel copies would each compile the same code
                 "--kernel-num-processes", "1", "--lookup-num-processes", "1"],
                env={**env, NUMBA_CACHE_ENV: str(cache),
                     "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"},
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pipeline shells and tools die with it
            )  # fmt: skip
            try:
                returncode = proc.wait(timeout=WARM_TIMEOUT_S)
            except BaseException:  # timeout, Ctrl-C: leave no pipeline behind
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        output = log.read_text(errors="replace")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if returncode != 0:
        tail = output.splitlines()[-15:]
        raise LocalRuntimeError("warming the numba cache failed:\n" + "\n".join(tail))
    marker.write_text("warmed by oasis-keda demo\n")
    return time.monotonic() - started
