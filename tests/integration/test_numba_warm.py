"""Which tools the numba warm-up compiles: those the model's pipeline runs, found by the
record pass (``worker.numba_warm record``, JIT off) for the model's run options and
analysis settings. And, marked slow: once warmed, a worker's whole run compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.runtime.synth import analysis_settings, write_synthetic_model
from oasis_keda.runtime.warm import order_tools, warm_model
from worker import numba_warm

pytestmark = pytest.mark.timeout(900)

ALL_OUTPUTS = {"evepy", "gulmc", "fmpy", "summarypy", "eltpy", "pltpy", "katpy", "aalpy", "lecpy"}


def _gul_elt_only() -> dict[str, Any]:
    settings = analysis_settings(4)
    settings["il_output"] = False
    settings.pop("il_summaries")
    settings["gul_summaries"] = [{"id": 1, "ord_output": {"elt_sample": True}}]
    return settings


def _record(model: Path, settings: dict[str, Any], root: Path) -> tuple[list[str], list[str]]:
    """The tools the worker runs in-process, and those it runs with bash."""
    settings_file = root.parent / f"{root.name}.settings.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "NUMBA_CACHE_DIR": str(root / "nc")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.numba_warm", "record", "--model-dir", str(model)]
        + ["--settings", str(settings_file), "--root", str(root)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {x.split(" ", 1)[0]: x.split()[1:] for x in done.stdout.splitlines()}
    recording = numba_warm.Recording.load(root)
    assert (recording.tools, recording.bash_tools) == (lines["tools"], lines["bash"])
    assert not (root / "nc").exists() or not any((root / "nc").iterdir()), "JIT off compiles"
    return lines["tools"], lines["bash"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    write_synthetic_model(root, locations=10, events=12, seed=1)
    return root


def test_every_ord_output_with_insured_losses(model: Path, tmp_path: Path) -> None:
    tools, bash = _record(model, analysis_settings(4), tmp_path / "rec")
    assert set(tools) == ALL_OUTPUTS and bash == []
    assert tools[:3] == ["evepy", "gulmc", "fmpy"]


def test_ground_up_event_losses_only(model: Path, tmp_path: Path) -> None:
    tools, bash = _record(model, _gul_elt_only(), tmp_path / "rec")
    assert set(tools) == {"evepy", "gulmc", "summarypy", "eltpy", "katpy"} and bash == []


def test_gulpy_run_option(model: Path, tmp_path: Path) -> None:
    """gulpy reads getmodel's stream: the worker runs that chunk script with bash, so its
    tools are named for a whole-pipeline compile rather than replayed one by one."""
    config = json.loads((model / "oasislmf.json").read_text())
    other = tmp_path / "gulpy"  # the same model files, another oasislmf.json
    other.mkdir()
    for child in model.iterdir():
        (other / child.name).symlink_to(child)
    (other / "oasislmf.json").unlink()
    (other / "oasislmf.json").write_text(json.dumps({**config, "gulmc": False, "gulpy": True}))
    tools, bash = _record(other, _gul_elt_only(), tmp_path / "rec")
    assert "gulpy" in bash and "gulmc" not in tools + bash
    assert "katpy" in tools  # the output step still runs in-process


def test_replays_run_slowest_first_and_merge_always() -> None:
    assert order_tools(["evepy", "katpy", "gulmc", "fmpy"]) == [
        "gulmc",
        "fmpy",
        "katpy",
        "merge",
        "evepy",
    ]


@pytest.mark.slow
def test_after_warming_a_run_compiles_nothing(tmp_path: Path) -> None:
    """An empty cache warmed for the model's settings; a worker's inputs and loss run of the
    whole portfolio (the warm-up runs its first 10 locations) then add no file to it: every
    function and signature was compiled by the warm-up."""
    model = tmp_path / "model"
    write_synthetic_model(model, locations=40, events=30, seed=2)
    assert numba_warm.RECORD_LOCATIONS < 40
    cache = tmp_path / "numba"
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(_gul_elt_only()))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    result = warm_model(model, cache_dir=cache, settings_file=settings_file, env=env, jobs=2)
    assert result is not None
    assert set(result.tools) == {"evepy", "gulmc", "summarypy", "eltpy", "katpy"}
    before = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    assert warm_model(model, cache_dir=cache, settings_file=settings_file, env=env) is None
    code = (
        "import sys; from pathlib import Path; from worker import numba_warm as w; "
        "job = w._job(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])); "
        "job['location_file'] = sys.argv[1] + '/location.csv'; "
        "w.run_losses(w.run_inputs(job))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model), str(settings_file), str(tmp_path / "run")],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    assert after == before
