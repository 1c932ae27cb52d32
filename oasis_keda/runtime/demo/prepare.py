"""Before the stack starts: the synthetic model on disk, and oasislmf's numba tools compiled
once into the cache the workers read."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from oasis_keda.runtime.demo.common import DemoSettings


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
    """Compile the model's numba tools before any worker runs (first run only).

    Several workers meeting a cold cache would each compile the same tools at the same
    time, and one pipeline compiles its tools one after another. ``oasis-keda model warm``'s
    warm-up (:mod:`oasis_keda.runtime.warm`) compiles each tool of the model's pipeline in
    its own process, as many at once as there are cores, into the cache the workers read
    (``NUMBA_CACHE_DIR``, else ``~/.cache/oasis-keda/numba``). Returns the seconds spent, or
    None when the cache was already warm for the model.
    """
    from oasis_keda.runtime.warm import warm_model
    from worker.oasis_env import numba_cache_dir

    cache = numba_cache_dir(env)
    console.print(f"numba cache {cache}: compiling what the model's pipeline needs, if anything")
    result = warm_model(model_dir, cache_dir=cache, env=env, console=console)
    return None if result is None else result.seconds
