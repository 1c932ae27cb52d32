"""Bad input to the oasislmf stages fails at once with an InputError naming what is wrong.

Covers: an empty location file and one with a header but no rows; missing required OED
columns (named); a non-numeric Latitude or Longitude (row and column named), both when
counting and in the lookup chunk holding the row, with nothing left in the output
directory (the other chunk reads only its own rows and succeeds); unreadable
settings (analysis settings that are not an object, a bad ``number_of_samples``, unreadable
model settings); a loss chunk on a directory that was never prepared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oasis_keda.core.model_dir import ModelDir
from oasis_keda.runtime.synth import write_synthetic_model
from tests.integration import oasis_support as sup
from worker import exposure, keys_order, lookup, losses
from worker.errors import InputError
from worker.oasis_env import prepare_process


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    prepare_process()
    return write_synthetic_model(tmp_path_factory.mktemp("synth"), locations=6, events=5)


def _edit(model: ModelDir, tmp_path: Path, row: int, column: str, value: str) -> Path:
    lines = (model.root / "location.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    path = tmp_path / "location.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_empty_location_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        exposure.count_locations(path)


def test_header_but_no_rows(synth: ModelDir, tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text((synth.root / "location.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"header\.csv has a header but no location rows"):
        exposure.count_locations(path)


def test_missing_location_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv does not exist"):
        exposure.count_locations(tmp_path / "nope.csv")


def test_missing_required_columns(synth: ModelDir, tmp_path: Path) -> None:
    lines = (synth.root / "location.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = {header.index("LocCurrency"), header.index("LocNumber")}
    path = tmp_path / "cols.csv"
    path.write_text(
        "\n".join(
            ",".join(c for i, c in enumerate(line.split(",")) if i not in drop) for line in lines
        )
        + "\n"
    )
    with pytest.raises(
        InputError,
        match=r"cols\.csv is missing required OED column\(s\): "
        r"LocNumber, LocCurrency",
    ):
        exposure.count_locations(path)
    with pytest.raises(InputError, match="LocNumber"):
        _keys_chunk(synth, path, 1, 1, tmp_path / "out")


def _keys_chunk(model: ModelDir, path: Path, k: int, n: int, out: Path) -> Path:
    options = lookup.generate_options(
        model,
        location_file=path,
        accounts_file=None,
        settings_file=sup.settings_file(sup.model_settings(model), out.parent / "settings"),
    )
    return lookup.prepare_keys_chunk(
        model=model, options=options, location_file=path, chunk_index=k, num_chunks=n, out_dir=out
    )


def _chunk_of_row(path: Path, row: int, n: int) -> int:
    """The chunk (of n, over one oasislmf partition) that looks up data row ``row``."""
    loc_ids = exposure.global_loc_ids(path)
    unique = sorted(set(loc_ids.tolist()))
    for k in range(1, n + 1):
        (piece,) = keys_order.chunk_pieces(1, k, n)
        if loc_ids[row - 1] in keys_order.piece_loc_ids(np.array(unique), 1, piece):
            return k
    raise AssertionError(f"row {row} is in no chunk")


@pytest.mark.parametrize(("row", "column"), [(3, "Latitude"), (5, "Longitude")])
def test_non_numeric_coordinates(synth: ModelDir, tmp_path: Path, row: int, column: str) -> None:
    path = _edit(synth, tmp_path, row, column, "north")
    with pytest.raises(
        InputError,
        match=rf"location\.csv: row {row} \(line {row + 1}\), "
        rf"column {column}: 'north' is not a number",
    ):
        exposure.count_locations(path)
    # the chunk holding the row fails; the other reads only its own rows, and succeeds
    bad_k = _chunk_of_row(path, row, 2)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"location\.csv"):
        _keys_chunk(synth, path, bad_k, 2, out)
    assert not out.exists() or list(out.iterdir()) == []
    good = _keys_chunk(synth, path, 3 - bad_k, 2, out)
    assert [p.name for p in out.iterdir()] == [good.name]


def test_analysis_settings_not_an_object(synth: ModelDir, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="analysis settings must be a JSON object"):
        losses.prepare_losses_dir(
            model=synth,
            input_dir=tmp_path,
            run_dir=tmp_path / "run",
            analysis_settings=["not", "a", "dict"],
        )  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()


def test_bad_number_of_samples(synth: ModelDir, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="number_of_samples must be an integer >= 0, got 'ten'"):
        losses.run_settings(synth, {"number_of_samples": "ten"})


def test_unreadable_model_settings(tmp_path: Path) -> None:
    model = write_synthetic_model(tmp_path / "m", locations=3, events=3)
    model.model_settings_json.write_text("{ not json")
    with pytest.raises(InputError, match=r"model settings .*model_settings\.json are unreadable"):
        losses.run_settings(model, {})


def test_chunk_of_unprepared_run(synth: ModelDir, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a prepared loss run"):
        losses.run_loss_chunk(model=synth, run_dir=tmp_path, chunk_index=1, num_chunks=2)
