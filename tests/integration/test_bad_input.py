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

import pytest

from oasis_keda.model_dir import ModelDir
from worker import lookup, losses
from worker.errors import InputError
from worker.oasis_env import prepare_process
from worker.synth import write_synthetic_model


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
        lookup.count_locations(path)


def test_header_but_no_rows(synth: ModelDir, tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text((synth.root / "location.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"header\.csv has a header but no location rows"):
        lookup.count_locations(path)


def test_missing_location_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv does not exist"):
        lookup.count_locations(tmp_path / "nope.csv")


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
        lookup.count_locations(path)
    with pytest.raises(InputError, match="LocNumber"):
        lookup.prepare_keys_chunk(
            model=synth, location_file=path, chunk_index=1, num_chunks=1, out_dir=tmp_path / "out"
        )


@pytest.mark.parametrize(("row", "column"), [(3, "Latitude"), (5, "Longitude")])
def test_non_numeric_coordinates(synth: ModelDir, tmp_path: Path, row: int, column: str) -> None:
    path = _edit(synth, tmp_path, row, column, "north")
    with pytest.raises(
        InputError,
        match=rf"location\.csv: row {row} \(line {row + 1}\), "
        rf"column {column}: 'north' is not a number",
    ):
        lookup.count_locations(path)
    # the chunk holding the row fails; the other reads only its own rows, and succeeds
    bad_k = next(
        k
        for k in (1, 2)
        if lookup.chunk_bounds(6, k, 2)[0] < row <= lookup.chunk_bounds(6, k, 2)[1]
    )
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"location\.csv"):
        lookup.prepare_keys_chunk(
            model=synth, location_file=path, chunk_index=bad_k, num_chunks=2, out_dir=out
        )
    assert not out.exists() or list(out.iterdir()) == []
    good = lookup.prepare_keys_chunk(
        model=synth, location_file=path, chunk_index=3 - bad_k, num_chunks=2, out_dir=out
    )
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
