"""Process set-up for running oasislmf: the persistent numba cache.

oasislmf's pipeline tools are numba code; compiling them costs about 30 s per tool, so the
compiled code must outlive the process. numba reads ``NUMBA_CACHE_DIR`` once, when it is
first imported, and the pipeline's child processes inherit it from our environment. So
:func:`prepare_process` must run before anything imports numba (the worker calls it first
thing, before its warm-up imports, see :mod:`worker.warmup`), and it sets the variable in
``os.environ`` on purpose: that is the channel to the children.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"
DEFAULT_NUMBA_CACHE_DIR = Path.home() / ".cache" / "oasis-keda" / "numba"


def numba_cache_dir(env: Mapping[str, str]) -> Path:
    """The cache directory: ``NUMBA_CACHE_DIR`` if set, else ``~/.cache/oasis-keda/numba``."""
    raw = env.get(NUMBA_CACHE_ENV, "")
    return Path(raw).expanduser() if raw else DEFAULT_NUMBA_CACHE_DIR


def prepare_process(env: Mapping[str, str] | None = None) -> Path:
    """Point numba (here and in pipeline children) at the persistent cache; return it.

    Also puts this interpreter's ``bin`` directory on ``PATH``: without it the pipeline's
    tools are "command not found" and the run script hangs on its FIFOs.

    Safe to call more than once. If numba was already imported with another cache
    directory, this process keeps that one (numba cannot switch) and we log it; the
    children still use the persistent one.
    """
    cache_dir = numba_cache_dir(os.environ if env is None else env)
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ[NUMBA_CACHE_ENV] = str(cache_dir)
    # the run scripts call evepy, gulmc, fmpy... by name: they live next to our interpreter
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + (os.pathsep + path if path else "")
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        current = getattr(numba_config, "CACHE_DIR", "")
        if current != str(cache_dir):
            logger.warning(
                "numba was imported before the cache was set; this process caches in %r, "
                "pipeline processes in %s",
                current,
                cache_dir,
            )
    return cache_dir
