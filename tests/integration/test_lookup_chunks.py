"""Chunked key lookup (worker.lookup) on real oasislmf runs.

Covers: 1, 3 and 8 lookup chunks give the same keys and keys-errors bytes as one chunk; one
chunk gives the same keys as oasislmf's own whole-file lookup (rows sorted); input files
written from 1 or 8 chunks' keys are identical; a re-run chunk replaces its output whole and
leaves no temporary files; chunk row ranges split like ``numpy.array_split``; more chunks
than rows gives empty chunks that merge cleanly. The same on PiWind when
/work/shared/piwind is present (10 rows here, 12,599 rows under ``-m slow``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from oasis_keda.model_dir import ModelDir
from tests.integration import oasis_support as sup
from worker import lookup
from worker.oasis_env import prepare_process
from worker.synth import write_synthetic_model

pytestmark = pytest.mark.timeout(900)  # a cold numba cache compiles for minutes


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    prepare_process()
    return write_synthetic_model(tmp_path_factory.mktemp("synth"), locations=40, events=20)


@pytest.fixture(scope="module")
def one_chunk(synth: ModelDir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sup.run_keys(synth, synth.root / "location.csv", 1, tmp_path_factory.mktemp("k1"))


@pytest.mark.parametrize(("total", "n"), [(10, 3), (40, 8), (5, 5), (3, 8), (12599, 7)])
def test_chunk_bounds_split_like_array_split(total: int, n: int) -> None:
    sizes = [len(part) for part in np.array_split(np.arange(total), n)]
    bounds = [lookup.chunk_bounds(total, k, n) for k in range(1, n + 1)]
    assert [end - start for start, end in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_one_chunk_matches_oasislmf_whole_file_lookup(
    synth: ModelDir, one_chunk: Path, tmp_path: Path
) -> None:
    from oasislmf.manager import OasisManager

    OasisManager().generate_keys(
        oed_location_csv=str(synth.root / "location.csv"),
        lookup_config_json=str(synth.lookup_config_json),
        lookup_data_dir=str(synth.lookup_data_dir),
        keys_data_path=str(tmp_path / "keys.csv"),
        keys_errors_path=str(tmp_path / "keys-errors.csv"),
        keys_format="oasis",
        lookup_multiprocessing=False,
    )
    want = (tmp_path / "keys.csv").read_text().splitlines()
    got = one_chunk.read_text().splitlines()
    assert got[0] == want[0]
    assert len(got) > 1
    assert sorted(got[1:]) == sorted(want[1:])


@pytest.mark.parametrize("n", [3, 8])
def test_chunked_keys_equal_one_chunk(
    synth: ModelDir, one_chunk: Path, n: int, tmp_path: Path
) -> None:
    keys = sup.run_keys(synth, synth.root / "location.csv", n, tmp_path)
    assert keys.read_bytes() == one_chunk.read_bytes()
    errors = keys.parent / lookup.KEYS_ERRORS_NAME
    assert errors.read_bytes() == (one_chunk.parent / lookup.KEYS_ERRORS_NAME).read_bytes()


def test_input_files_from_chunked_keys_are_identical(synth: ModelDir, tmp_path: Path) -> None:
    settings = sup.model_settings(synth)
    loc, acc = synth.root / "location.csv", synth.root / "account.csv"
    one = sup.run_inputs(synth, loc, acc, settings, tmp_path / "one", lookup_chunks=1)
    eight = sup.run_inputs(synth, loc, acc, settings, tmp_path / "eight", lookup_chunks=8)
    a, b = sup.tree(one), sup.tree(eight)
    assert "items.csv" in b or "items.bin" in b
    assert "fm_programme.csv" in b or "fm_programme.bin" in b
    assert a == b


def test_rerun_chunk_replaces_output(synth: ModelDir, tmp_path: Path) -> None:
    loc = synth.root / "location.csv"
    first = lookup.prepare_keys_chunk(
        model=synth, location_file=loc, chunk_index=2, num_chunks=3, out_dir=tmp_path
    )
    before = sup.tree(first)
    (first / lookup.KEYS_NAME).write_text("half a file")
    again = lookup.prepare_keys_chunk(
        model=synth, location_file=loc, chunk_index=2, num_chunks=3, out_dir=tmp_path
    )
    assert again == first
    assert sup.tree(again) == before
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_more_chunks_than_rows(tmp_path: Path) -> None:
    model = write_synthetic_model(tmp_path / "m", locations=3, events=5)
    loc = model.root / "location.csv"
    one = sup.run_keys(model, loc, 1, tmp_path / "one")
    five = sup.run_keys(model, loc, 5, tmp_path / "five")
    assert five.read_bytes() == one.read_bytes()


piwind_only = pytest.mark.skipif(not sup.PIWIND.exists(), reason="no /work/shared/piwind")


@piwind_only
@pytest.mark.parametrize("n", [3, 8])
def test_piwind_10_rows_chunked_keys_equal_one_chunk(n: int, tmp_path: Path) -> None:
    prepare_process()
    model = sup.piwind()
    one = sup.run_keys(model, sup.PIWIND_10, 1, tmp_path / "one")
    many = sup.run_keys(model, sup.PIWIND_10, n, tmp_path / "many")
    assert len(one.read_text().splitlines()) > 1
    assert many.read_bytes() == one.read_bytes()


@piwind_only
@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 8])
def test_piwind_full_chunked_keys_equal_one_chunk(n: int, tmp_path: Path) -> None:
    prepare_process()
    model = sup.piwind()
    one = sup.run_keys(model, sup.PIWIND_FULL, 1, tmp_path / "one")
    many = sup.run_keys(model, sup.PIWIND_FULL, n, tmp_path / "many")
    assert many.read_bytes() == one.read_bytes()
    # and the same keys as oasislmf's whole-file lookup
    from oasislmf.manager import OasisManager

    OasisManager().generate_keys(
        oed_location_csv=str(sup.PIWIND_FULL),
        lookup_config_json=str(model.lookup_config_json),
        lookup_data_dir=str(model.lookup_data_dir),
        keys_data_path=str(tmp_path / "ref.csv"),
        keys_errors_path=str(tmp_path / "ref-errors.csv"),
        keys_format="oasis",
    )
    want = (tmp_path / "ref.csv").read_text().splitlines()
    got = one.read_text().splitlines()
    assert got[0] == want[0] and sorted(got[1:]) == sorted(want[1:])
