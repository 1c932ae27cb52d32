"""``model_data/``: damage and intensity bins, vulnerabilities, the footprint (plain or one
per footprint set), the event set, occurrences, return periods and quantiles; CSV first,
then oasislmf's binary formats from its own converters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oasis_keda.runtime.synth.common import (
    COVERAGES,
    DAMAGE_BINS,
    FOOTPRINT_SUFFIXES,
    GRID,
    INTENSITY_BINS,
    OCCUPANCY_CODES,
    PERILS,
    RETURN_PERIODS,
    areaperil_id,
    write_csv,
)


def _vulnerability_rows(rng: np.random.Generator, n_vulns: int) -> list[tuple[int, int, int, str]]:
    """A damage distribution per (vulnerability, intensity): mean damage grows with intensity."""
    rows: list[tuple[int, int, int, str]] = []
    centres = np.arange(1, DAMAGE_BINS + 1)
    for vuln in range(1, n_vulns + 1):
        scale = 0.6 + 0.8 * rng.random()
        for ib in range(1, INTENSITY_BINS + 1):
            mean = 1.0 + (DAMAGE_BINS - 1) * min(1.0, scale * ib / INTENSITY_BINS)
            weights = np.exp(-0.5 * ((centres - mean) / 1.5) ** 2)
            probs = np.round(weights / weights.sum(), 6)
            probs[-1] = round(1.0 - probs[:-1].sum(), 6)
            rows.extend(
                (vuln, ib, int(db), f"{p:.6f}") for db, p in zip(centres, probs, strict=True)
            )
    return rows


def _storm_rows(
    event: int, cells: Sequence[tuple[int, int]], centre: Any, peak: int
) -> list[tuple[int, int, int, str]]:
    """The footprint rows of one storm: intensity falls with a cell's distance to its centre."""
    rows: list[tuple[int, int, int, str]] = []
    for lon_i, lat_i in cells:
        dist = math.hypot(lon_i - centre[0], lat_i - centre[1])
        areaperil = areaperil_id(lon_i, lat_i)  # the cells of keys_data's rtree step
        ib = max(1, peak - int(dist))
        if ib > 1:  # intensity uncertainty: split between two bins
            rows.append((event, areaperil, ib - 1, "0.300000"))
            rows.append((event, areaperil, ib, "0.700000"))
        else:
            rows.append((event, areaperil, ib, "1.000000"))
    return rows


def _radius_storms(rng: np.random.Generator, events: int) -> list[tuple[int, int, int, str]]:
    """Each event is a storm of radius 2 to 4 cells centred on a random cell (about a third
    of the grid per event)."""
    rows: list[tuple[int, int, int, str]] = []
    for event in range(1, events + 1):
        cx, cy = rng.integers(0, GRID, size=2)
        peak = int(rng.integers(3, INTENSITY_BINS + 1))
        radius = int(rng.integers(2, 5))
        cells = [
            (lon_i, lat_i)
            for lon_i in range(GRID)
            for lat_i in range(GRID)
            if math.hypot(lon_i - cx, lat_i - cy) <= radius
        ]
        rows.extend(_storm_rows(event, cells, (cx, cy), peak))
    return rows


#: Every grid cell (lon index, lat index), in area peril order.
_CELLS = np.array([(lon_i, lat_i) for lon_i in range(GRID) for lat_i in range(GRID)])


def _dense_storms(
    rng: np.random.Generator, events: int, density: float
) -> list[tuple[int, int, int, str]]:
    """Each event is a storm over the ``n`` cells nearest a random point, ``n`` the density
    times the cells, rounded up or down at random so that its mean is exact (at least 1)."""
    target = density * len(_CELLS)
    whole, part = int(target), target - int(target)
    rows: list[tuple[int, int, int, str]] = []
    for event in range(1, events + 1):
        centre = rng.random(2) * GRID - 0.5  # cell (i, j) covers i - 0.5 .. i + 0.5
        peak = int(rng.integers(3, INTENSITY_BINS + 1))
        n = min(len(_CELLS), max(1, whole + int(rng.random() < part)))
        dist = np.hypot(*(_CELLS - centre).T)
        nearest = np.argsort(dist, kind="stable")[:n]
        cells = [(int(_CELLS[i][0]), int(_CELLS[i][1])) for i in np.sort(nearest)]
        rows.extend(_storm_rows(event, cells, centre, peak))
    return rows


def _footprint_rows(
    rng: np.random.Generator, events: int, density: float | None
) -> list[tuple[int, int, int, str]]:
    """The footprint, sorted by event, area peril and intensity bin."""
    if density is None:
        rows = _radius_storms(rng, events)
    else:
        rows = _dense_storms(rng, events, density)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def _tobin(model_data: Path, name: str, file_type: str, **kwargs: Any) -> None:
    from oasislmf.pytools.converters.csvtobin.manager import csvtobin

    csvtobin(str(model_data / f"{name}.csv"), str(model_data / f"{name}.bin"), file_type, **kwargs)


def _write_footprint(
    model_data: Path, name: str, rng: np.random.Generator, events: int, density: float | None
) -> None:
    """``<name>.csv`` and oasislmf's ``<name>.bin`` and ``<name>.idx`` from it."""
    write_csv(
        model_data / f"{name}.csv",
        ["event_id", "areaperil_id", "intensity_bin_id", "probability"],
        _footprint_rows(rng, events, density),
    )
    _tobin(
        model_data,
        name,
        "footprint",
        idx_file_out=str(model_data / f"{name}.idx"),
        zip_files=False,
        max_intensity_bin_idx=INTENSITY_BINS,
        no_intensity_uncertainty=False,
        decompressed_size=False,
        no_validation=False,
    )


def _footprint_names(model_data: Path) -> set[str]:
    """The footprint files (plain or of a set) already in ``model_data``."""
    return {
        p.name
        for p in model_data.glob("footprint*")
        if p.suffix in FOOTPRINT_SUFFIXES and p.stem.split("_", 1)[0] == "footprint"
    }


def _write_bins(model_data: Path) -> None:
    """The damage bins (CSV and binary) and the intensity bins (CSV only)."""
    step = 1.0 / (DAMAGE_BINS - 1)
    damage = [(1, "0", "0", "0", 0)] + [
        (i + 1, f"{(i - 1) * step:.6f}", f"{i * step:.6f}", f"{(i - 0.5) * step:.6f}", 0)
        for i in range(1, DAMAGE_BINS)
    ]
    write_csv(
        model_data / "damage_bin_dict.csv",
        ["bin_index", "bin_from", "bin_to", "interpolation", "damage_type"],
        damage,
    )
    _tobin(model_data, "damage_bin_dict", "damagebin", no_validation=False)
    write_csv(
        model_data / "intensity_bin_dict.csv",
        ["bin_index", "bin_from", "bin_to", "interpolation", "interval_type"],
        [(i, 20 + 10 * i, 30 + 10 * i, 25 + 10 * i, 1202) for i in range(1, INTENSITY_BINS + 1)],
    )


def _write_events(model_data: Path, events: int) -> None:
    """The event set, the occurrences, the return periods and the quantiles."""

    def tobin(name: str, file_type: str, **kwargs: Any) -> None:
        _tobin(model_data, name, file_type, **kwargs)

    write_csv(model_data / "events_p.csv", ["event_id"], ((e,) for e in range(1, events + 1)))
    tobin("events_p", "eve")
    # one event per period: period p holds event p, dated in year p
    write_csv(
        model_data / "occurrence_lt.csv",
        ["event_id", "period_no", "occ_year", "occ_month", "occ_day"],
        ((e, e, e, 1 + e % 12, 1 + e % 28) for e in range(1, events + 1)),
    )
    tobin("occurrence_lt", "occurrence", no_of_periods=events)
    write_csv(model_data / "returnperiods.csv", ["return_period"], ((rp,) for rp in RETURN_PERIODS))
    tobin("returnperiods", "returnperiods")
    write_csv(
        model_data / "quantile.csv",
        ["quantile"],
        ((q,) for q in ("0.0", "0.25", "0.5", "0.75", "1.0")),
    )
    tobin("quantile", "quantile")


def write_model_data(
    model_data: Path,
    rng: np.random.Generator,
    events: int,
    footprints: Sequence[tuple[str, np.random.Generator]] = (),
    footprint_density: float | None = None,
) -> None:
    """Write the model data; ``footprints`` (file stem, stream) replace the plain footprint,
    which otherwise comes from ``rng`` after the vulnerabilities. ``footprint_density``: the
    fraction of the area perils each event touches (None: the radius storms)."""
    _write_bins(model_data)
    n_vulns = len(PERILS) * len(COVERAGES) * len(OCCUPANCY_CODES)
    write_csv(
        model_data / "vulnerability.csv",
        ["vulnerability_id", "intensity_bin_id", "damage_bin_id", "probability"],
        _vulnerability_rows(rng, n_vulns),
    )
    _tobin(
        model_data,
        "vulnerability",
        "vulnerability",
        idx_file_out=None,
        max_damage_bin_idx=DAMAGE_BINS,
        no_validation=False,
        suppress_int_bin_checks=False,
        zip_files=False,
    )
    stale = _footprint_names(model_data)
    for name, footprint_rng in footprints or [("footprint", rng)]:
        _write_footprint(model_data, name, footprint_rng, events, footprint_density)
        stale -= {name + suffix for suffix in FOOTPRINT_SUFFIXES}
    for name in stale:  # e.g. a plain footprint: oasislmf could not link the chosen set
        (model_data / name).unlink()
    _write_events(model_data, events)
