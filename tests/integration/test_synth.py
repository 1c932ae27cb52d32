"""The built-in synthetic model.

Covers: the same arguments write the same bytes; another seed writes other data; the model
directory reads back with ``number_of_events`` for its event set; the analysis settings set
``number_of_samples``; ``oasis-keda model synth`` writes it from the command line, with
the footprint density asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core.model_dir import read_model_dir
from oasis_keda.runtime.synth import write_synthetic_model
from tests.integration.oasis_support import tree


def test_same_arguments_write_same_bytes(tmp_path: Path) -> None:
    write_synthetic_model(tmp_path / "a", locations=12, events=9, seed=3)
    write_synthetic_model(tmp_path / "b", locations=12, events=9, seed=3)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_another_seed_writes_other_data(tmp_path: Path) -> None:
    write_synthetic_model(tmp_path / "a", locations=12, events=9, seed=1)
    write_synthetic_model(tmp_path / "b", locations=12, events=9, seed=2)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a["location.csv"] != b["location.csv"]
    assert a["model_data/footprint.bin"] != b["model_data/footprint.bin"]


def test_model_dir_reads_back_with_event_count(tmp_path: Path) -> None:
    model = write_synthetic_model(tmp_path, locations=7, events=13)
    again = read_model_dir(tmp_path)
    assert again == model
    assert model.event_set(None) is not None
    assert model.event_set(None).number_of_events == 13  # type: ignore[union-attr]
    assert (model.model_data_dir / "events_p.bin").stat().st_size == 13 * 4
    rows = (tmp_path / "location.csv").read_text().splitlines()
    assert len(rows) == 1 + 7
    settings = json.loads((tmp_path / "analysis_settings.json").read_text())
    assert settings["number_of_samples"] > 0
    assert settings["model_settings"]["event_set"] == "p"


def test_cli_writes_the_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["model", "synth", "--dir", str(tmp_path / "m"), "--locations", "5", "--events", "4"]
    )
    assert result.exit_code == 0, result.output
    model = read_model_dir(tmp_path / "m")
    assert model.event_set(None).number_of_events == 4  # type: ignore[union-attr]
    assert len((tmp_path / "m" / "location.csv").read_text().splitlines()) == 6


def test_cli_footprint_density(tmp_path: Path) -> None:
    """``--footprint-density 1`` touches every area peril with every event."""
    args = ["model", "synth", "--locations", "5", "--events", "4", "--footprint-density"]
    for name, density in (("dense", "1"), ("sparse", "0.02")):
        result = CliRunner().invoke(cli, [*args, density, "--dir", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    rows = {
        name: (tmp_path / name / "model_data" / "footprint.csv").read_text().splitlines()[1:]
        for name in ("dense", "sparse")
    }
    cells = {name: {tuple(r.split(",")[:2]) for r in found} for name, found in rows.items()}
    assert len(cells["dense"]) == 4 * 100
    assert 4 <= len(cells["sparse"]) <= 4 * 3
