"""A prepared loss run's structures are those of oasislmf's own run, byte for byte.

Covers: the gulmc structures and the GUL and IL summary objects a loss run's preparation
saves (with :mod:`worker.loss_prepare`'s faster helpers) equal those ``oasislmf model
run`` saved in its own run directory on the same inputs, for the synthetic model and for
PiWind's first 10 locations (when PiWind is beside the repository); and the two helpers
against what they replace: numpy's ``merge_arrays`` on the kinds of tables the
preparation passes, and oasislmf's summary cross-reference loop (an item listed twice in a
set, summary sets the run does not use).
"""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.recfunctions as rfn
import pytest

from oasis_keda.core.model_dir import ModelDir
from oasis_keda.runtime.synth import write_synthetic_model
from tests import oracle
from tests.integration import oasis_support as sup
from worker import loss_prepare, losses
from worker.oasis_env import prepare_process

pytestmark = pytest.mark.timeout(1800)  # a cold numba cache compiles for minutes

STRUCTURE_DIRS = ("gulmc_structure", "gul", "il")


def _assert_same_structures(ours: Path, theirs: Path) -> None:
    compared = 0
    for sub in STRUCTURE_DIRS:
        names = sorted(p.name for p in (theirs / sub).glob("*.npy"))
        assert names, f"oasislmf's run has no {sub} structures"
        assert sorted(p.name for p in (ours / sub).glob("*.npy")) == names
        differ = [n for n in names if not filecmp.cmp(ours / sub / n, theirs / sub / n, False)]
        assert not differ, f"{sub}: {differ} differ from oasislmf's"
        compared += len(names)
    assert compared > 20


def _prepare_like(
    model: ModelDir, run: oracle.OracleRun, settings: dict[str, Any], out: Path
) -> Path:
    run_dir = out / "run"
    losses.prepare_losses_dir(
        model=model,
        input_dir=run.input_dir,
        analysis_settings={**settings, "ri_output": False},
        run_dir=run_dir,
    )
    return run_dir


def test_synthetic_model_structures_equal_oasislmf(tmp_path: Path) -> None:
    prepare_process()
    model = write_synthetic_model(tmp_path / "model", locations=200, events=60, seed=5)
    settings = sup.model_settings(model)
    run = oracle.oracle_run(
        model.root,
        location=model.root / "location.csv",
        accounts=model.root / "account.csv",
        settings=settings,
        run_dir=tmp_path / "oracle",
    )
    run_dir = _prepare_like(model, run, settings, tmp_path)
    _assert_same_structures(run_dir / "input", run.run_dir / "input")


@pytest.mark.skipif(not sup.PIWIND.exists(), reason="no PiWind beside the repository")
def test_piwind_structures_equal_oasislmf(tmp_path: Path) -> None:
    prepare_process()
    settings = sup.piwind_settings()
    run = oracle.oracle_run(
        sup.PIWIND,
        location=sup.PIWIND_10,
        accounts=sup.PIWIND_ACC,
        settings=settings,
        run_dir=tmp_path / "oracle",
    )
    run_dir = _prepare_like(sup.piwind(), run, settings, tmp_path)
    _assert_same_structures(run_dir / "input", run.run_dir / "input")


def _table(n: int, fields: list[tuple[str, Any]], seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    table = np.empty(n, dtype=np.dtype(fields))
    for name, _ in fields:
        table[name] = rng.integers(0, 1000, n)
    return table


def test_merge_arrays_as_numpy() -> None:
    items = _table(50, [("item_id", np.int32), ("areaperil_id", np.uint32), ("tiv", np.float64)], 1)
    extra = _table(50, [("vulnerability_idx", np.int32), ("group_seq_id", np.int64)], 2)
    ours = loss_prepare.merge_arrays((items, extra), flatten=True)
    theirs = rfn.merge_arrays((items, extra), flatten=True)
    assert ours.dtype == theirs.dtype
    assert ours.tobytes() == theirs.tobytes()


def test_merge_arrays_other_cases_go_to_numpy() -> None:
    a = _table(5, [("a", np.int32)], 1)
    b = _table(3, [("b", np.int32)], 2)
    for args, kwargs in [
        ((a, b), {"flatten": True}),  # unequal lengths: numpy pads
        ((a, _table(5, [("b", np.int32)], 2)), {"flatten": False}),
        ((a, _table(5, [("b", np.int32)], 2)), {"flatten": True, "usemask": True}),
    ]:
        ours = loss_prepare.merge_arrays(args, **kwargs)
        theirs = rfn.merge_arrays(args, **kwargs)
        assert type(ours) is type(theirs)
        assert ours.dtype == theirs.dtype
        assert ours.tolist() == theirs.tolist()


def _oasislmf_xref_info() -> Any:
    """oasislmf's own ``get_summary_xref_info``, from a fresh copy of its module (the
    loaded one may already point at ours)."""
    import importlib.util

    spec = importlib.util.find_spec("oasislmf.pytools.summary.manager")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.get_summary_xref_info is not loss_prepare.summary_xref_info
    return module.get_summary_xref_info


def test_summary_xref_info_as_oasislmf() -> None:
    from oasislmf.pytools.common.data import null_index, oasis_int
    from oasislmf.pytools.summary.manager import get_summary_set_id_to_summary_set_index

    rng = np.random.default_rng(7)
    n = 400
    xref = np.empty(
        n, dtype=[("item_id", oasis_int), ("summary_id", oasis_int), ("summaryset_id", oasis_int)]
    )
    xref["item_id"] = rng.integers(1, 120, n)  # items listed more than once per set
    xref["summary_id"] = rng.integers(1, 30, n)
    xref["summaryset_id"] = rng.integers(1, 4, n)
    sets_id = np.array([1, 3], dtype=oasis_int)  # set 2 is not used by the run
    set_index_of = get_summary_set_id_to_summary_set_index(sets_id)
    assert set_index_of[2] == null_index
    ours = loss_prepare.summary_xref_info(xref, sets_id, set_index_of)
    theirs = _oasislmf_xref_info()(xref, sets_id, set_index_of)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype
        assert a.shape == b.shape
        assert a.tobytes() == b.tobytes()
