"""Benchmark harness: ``python -m bench [NAME ...]`` (``make bench`` runs all).

Imports every ``bench/bench_*.py`` module, calls its ``run(settings) -> str`` (a markdown
section) and writes ``docs/BENCHMARKS.md`` with the command, the machine (cores, CPU
model, Python) and the date. With NAMEs (e.g. ``scaler`` or ``bench_scaler``) only those
modules run and only their sections are replaced; the other sections are kept. A module
that fails gets a section saying so, and the harness exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from oasis_keda.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "BENCHMARKS.md"
_SECTION = re.compile(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->\n", re.DOTALL)

logger = logging.getLogger("bench")


def discover() -> list[str]:
    return sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def run_module(name: str, settings: Settings) -> tuple[str, bool]:
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
        body = module.run(settings).strip() + "\n"
        ok = True
    except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
        body = f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```\n"
        ok = False
    logger.info("%s: %s in %.0f s", name, "done" if ok else "FAILED", time.monotonic() - started)
    return body, ok


def render(sections: dict[str, str], command: str) -> str:
    header = (
        "# Benchmarks\n\n"
        f"Written by `{command}` (harness `bench/__main__.py`) on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.\n\n"
        f"Machine: {machine()}.\n\n"
        "Each section below comes from one `bench/bench_*.py` module; rerun one alone with "
        "`python -m bench NAME` (with `OASIS_KEDA_REDIS_URL` set, as `make bench` does).\n\n"
        "oasislmf's pipeline tools (`evepy`, `gulmc`, `fmpy`, `summarypy`...) are numba code: "
        "the first run of each tool compiles it, about 30 s per tool on this machine, and the "
        "compiled code is cached in `NUMBA_CACHE_DIR` (default `~/.cache/oasis-keda/numba`). "
        "Every figure below is on a warm cache. A fresh process also pays about 4.4 s to import "
        "oasislmf; a warm worker pays it once.\n\n"
    )
    body = "".join(
        f"<!-- bench:{name} -->\n{text}<!-- /bench:{name} -->\n\n"
        for name, text in sorted(sections.items())
    )
    return header + body


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings.from_env(os.environ)
    available = discover()
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available}", file=sys.stderr)
        return 2
    names = wanted or available
    sections: dict[str, str] = {}
    if wanted and OUTPUT.exists():  # keep the sections of modules not rerun
        sections = {m.group(1): m.group(2) for m in _SECTION.finditer(OUTPUT.read_text())}
    ok = True
    for name in names:
        sections[name], passed = run_module(name, settings)
        ok = ok and passed
    command = "python -m bench" + "".join(f" {a}" for a in argv)
    if not argv:
        command = "make bench"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(sections, command))
    logger.info("wrote %s", OUTPUT)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
