"""The synthetic model's footprint density.

Covers: with a density F, the fraction of the area perils an event touches averages F
(within 1%) and every event touches at least one; the same seed gives the same footprint
and another seed another; without a density, the radius storms (about a third of the grid);
densities outside (0, 1] refused, by the Python API and by ``oasis-keda model synth``
naming its option, before anything is written; the command line's default is the library's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.cli.model import DEFAULT_FOOTPRINT_DENSITY as CLI_DEFAULT
from oasis_keda.runtime.synth import (
    DEFAULT_FOOTPRINT_DENSITY,
    GRID,
    check_footprint_density,
    write_synthetic_model,
)
from oasis_keda.runtime.synth.model_data import _footprint_rows

EVENTS = 2000


def _touched(density: float | None, seed: int = 0) -> dict[int, set[int]]:
    """Area perils touched per event."""
    touched: dict[int, set[int]] = defaultdict(set)
    for event, areaperil, _bin, _p in _footprint_rows(np.random.default_rng(seed), EVENTS, density):
        touched[event].add(areaperil)
    return touched


@pytest.mark.parametrize("density", [0.02, 0.05, 0.125, 0.5, 1.0])
def test_events_touch_the_density_of_area_perils(density: float) -> None:
    touched = _touched(density)
    assert sorted(touched) == list(range(1, EVENTS + 1))  # every event touches some
    fractions = [len(cells) / GRID**2 for cells in touched.values()]
    assert math.isclose(float(np.mean(fractions)), density, rel_tol=0.01, abs_tol=1e-3)
    assert max(fractions) <= math.ceil(density * GRID**2) / GRID**2


def test_a_density_below_one_cell_still_touches_one() -> None:
    assert {len(cells) for cells in _touched(0.001).values()} == {1}


def test_same_seed_same_footprint_other_seed_other() -> None:
    one = _footprint_rows(np.random.default_rng(3), 50, 0.02)
    assert one == _footprint_rows(np.random.default_rng(3), 50, 0.02)
    assert one != _footprint_rows(np.random.default_rng(4), 50, 0.02)


def test_without_a_density_the_radius_storms_cover_about_a_third() -> None:
    fractions = [len(cells) / GRID**2 for cells in _touched(None).values()]
    assert 0.2 < float(np.mean(fractions)) < 0.4


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, math.nan, True, "0.1"])
def test_bad_densities_are_refused(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"footprint density .* in \(0, 1\]"):
        check_footprint_density(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="footprint density"):
        write_synthetic_model(tmp_path / "m", footprint_density=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "nan", "lots"])
def test_the_command_refuses_bad_densities_naming_the_option(bad: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["model", "synth", "--dir", str(tmp_path / "m"), "--footprint-density", bad]
    )
    assert result.exit_code == 2, result.output
    assert "--footprint-density" in result.output
    assert not (tmp_path / "m").exists()


def test_the_command_default_is_the_library_default() -> None:
    assert CLI_DEFAULT == DEFAULT_FOOTPRINT_DENSITY
    assert check_footprint_density(1) == 1.0
