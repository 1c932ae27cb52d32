"""A small, deterministic Oasis model that oasislmf runs with its built-in lookup.

The main job and the fast tests need a model that is always there (no network, nothing from
../shared) and that a full run finishes in seconds once numba is warm. The model is a
windstorm on a 10 x 10 grid of area perils over (51..52 N, 1..0 W): the built-in ``rtree``
lookup step maps coordinates to area perils (grid cells as polygons, as PiWind does), and a
``merge`` step maps (peril, coverage, occupancy) to vulnerabilities. Model data is written
as CSV (readable) and converted to oasislmf's binary formats with its own converters.

With ``footprint_sets`` the model has several footprints, one per set id: oasislmf's
``footprint_<id>.bin``/``.idx`` (and the CSV they come from) instead of the plain
``footprint.*``. The model settings declare them (``model_settings.footprint_set``, default
the first id) and the written analysis settings choose the first; analysis settings pick
another with ``model_settings.footprint_set``, which oasislmf links to ``static/footprint.*``
in the run directory (``set_footprint_set``).

The footprint: with ``footprint_density`` F, each event is a storm over the ``F x 100``
cells nearest a random point (rounded up or down at random, so the mean is exact; at least
one cell), intensity falling with distance; this is how real models' footprints look, an
event touching a small part of the area perils (``oasis-keda model synth`` defaults to
0.02). Without it (the Python default) each event is a storm of radius 2 to 4 cells, about
a third of the grid: the demo and the tests use that dense footprint so that their few
locations have losses in most events.

Everything comes from ``numpy.random.default_rng`` seeded with ``seed`` (one stream per
part, one per footprint set), so the same arguments write the same bytes. Writing over an
existing model overwrites its files in place; footprint files it does not write are removed.

The parts: :mod:`.common` (the grid, bins, perils, coverages, occupancies; the CSV and JSON
writers), :mod:`.model_data` (bins, vulnerabilities, footprints, events), :mod:`.keys_data`
(the lookup), :mod:`.settings` (model, analysis and oasislmf settings) and :mod:`.exposure`
(the OED location and account files). This module writes them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from oasis_keda.core.model_dir import ModelDir, read_model_dir
from oasis_keda.runtime.synth.common import (
    ARC_SIZE,
    COVERAGES,
    DAMAGE_BINS,
    DEFAULT_EVENTS,
    DEFAULT_FOOTPRINT_DENSITY,
    DEFAULT_LOCATIONS,
    DEFAULT_SAMPLES,
    FOOTPRINT_SET_ID,
    FOOTPRINT_SUFFIXES,
    GRID,
    INTENSITY_BINS,
    LAT_MAX,
    LAT_MIN,
    LON_MAX,
    LON_MIN,
    MODEL,
    OCCUPANCY_CODES,
    PERILS,
    RETURN_PERIODS,
    write_json,
)
from oasis_keda.runtime.synth.exposure import write_exposure
from oasis_keda.runtime.synth.keys_data import write_keys_data
from oasis_keda.runtime.synth.model_data import write_model_data
from oasis_keda.runtime.synth.settings import analysis_settings, model_settings, oasislmf_config

__all__ = [
    "ARC_SIZE",
    "COVERAGES",
    "DAMAGE_BINS",
    "DEFAULT_EVENTS",
    "DEFAULT_FOOTPRINT_DENSITY",
    "DEFAULT_LOCATIONS",
    "DEFAULT_SAMPLES",
    "FOOTPRINT_SET_ID",
    "FOOTPRINT_SUFFIXES",
    "GRID",
    "INTENSITY_BINS",
    "LAT_MAX",
    "LAT_MIN",
    "LON_MAX",
    "LON_MIN",
    "MODEL",
    "OCCUPANCY_CODES",
    "PERILS",
    "RETURN_PERIODS",
    "analysis_settings",
    "check_footprint_density",
    "write_synthetic_model",
]


def _check_arguments(locations: int, events: int, footprint_sets: Sequence[str]) -> tuple[str, ...]:
    """The footprint set ids, once the arguments are known to be valid."""
    if locations < 1 or events < 1:
        raise ValueError("locations and events must be >= 1")
    if isinstance(footprint_sets, str):
        raise TypeError("footprint_sets must be a sequence of set ids, not one string")
    sets = tuple(footprint_sets)
    bad = [s for s in sets if not FOOTPRINT_SET_ID.fullmatch(s)]
    if bad or len(set(sets)) != len(sets):
        raise ValueError(f"footprint set ids must be distinct [A-Za-z0-9_-] names, got {sets}")
    return sets


def check_footprint_density(density: float | None) -> float | None:
    """``density`` if it is None or a number in (0, 1]; ValueError otherwise."""
    if density is None:
        return None
    if isinstance(density, bool) or not isinstance(density, int | float) or not 0 < density <= 1:
        raise ValueError(
            f"footprint density must be a fraction of the area perils in (0, 1], got {density!r}"
        )
    return float(density)


def write_synthetic_model(
    directory: Path,
    *,
    locations: int = DEFAULT_LOCATIONS,
    events: int = DEFAULT_EVENTS,
    seed: int = 0,
    footprint_sets: Sequence[str] = (),
    footprint_density: float | None = None,
) -> ModelDir:
    """Write the model (data, keys, settings, exposure) under ``directory``; return it read back.

    ``footprint_sets`` (ids such as ``"s1"``): one footprint per set instead of the plain
    one, each from its own stream seeded with ``seed`` and the id, so sets differ and a set
    has the same data whatever other sets are written with it. ``footprint_density``: the
    fraction of the area perils each event touches, in (0, 1]; None for the radius storms.
    """
    sets = _check_arguments(locations, events, footprint_sets)
    density = check_footprint_density(footprint_density)
    root = Path(directory).resolve()
    model_data, keys_data, meta = root / "model_data", root / "keys_data", root / "meta-data"
    for path in (model_data, keys_data, meta):
        path.mkdir(parents=True, exist_ok=True)
    # separate streams so that changing one size leaves the other parts unchanged
    model_rng, exposure_rng = (np.random.default_rng([seed, k]) for k in (1, 2))
    footprints = [
        (f"footprint_{s}", np.random.default_rng([seed, 3, *s.encode("ascii")])) for s in sets
    ]
    write_model_data(model_data, model_rng, events, footprints, density)
    write_keys_data(keys_data)
    write_json(meta / "model_settings.json", model_settings(events, sets))
    write_exposure(root, exposure_rng, locations)
    write_json(
        root / "analysis_settings.json",
        analysis_settings(footprint_set=sets[0] if sets else None),
    )
    write_json(root / "oasislmf.json", oasislmf_config())
    return read_model_dir(root)
