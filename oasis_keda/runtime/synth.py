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

Everything comes from ``numpy.random.default_rng`` seeded with ``seed`` (one stream per
part, one per footprint set), so the same arguments write the same bytes. Writing over an
existing model overwrites its files in place; footprint files it does not write are removed.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oasis_keda.core.model_dir import ModelDir, read_model_dir

DEFAULT_LOCATIONS = 40
DEFAULT_EVENTS = 60
DEFAULT_SAMPLES = 8

LAT_MIN, LAT_MAX, LON_MIN, LON_MAX, ARC_SIZE = 51.0, 52.0, -1.0, 0.0, 0.1
GRID = 10  # cells per side
INTENSITY_BINS = 6
DAMAGE_BINS = 11  # bin 1 is "no damage"
OCCUPANCY_CODES = (1050, 1100)
PERILS = ("WTC",)
COVERAGES = (1, 3)  # buildings, contents
MODEL = {"supplier_id": "OasisKeda", "model_id": "Synth", "model_version": "1"}
RETURN_PERIODS = (500, 250, 100, 50, 20, 10, 5, 2)
FOOTPRINT_SET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
FOOTPRINT_SUFFIXES = (".csv", ".bin", ".idx")


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


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


def _footprint_rows(rng: np.random.Generator, events: int) -> list[tuple[int, int, int, str]]:
    """Each event is a storm centred on a random cell; intensity falls with distance."""
    rows: list[tuple[int, int, int, str]] = []
    for event in range(1, events + 1):
        cx, cy = rng.integers(0, GRID, size=2)
        peak = int(rng.integers(3, INTENSITY_BINS + 1))
        radius = int(rng.integers(2, 5))
        for lon_i in range(GRID):
            for lat_i in range(GRID):
                dist = math.hypot(lon_i - cx, lat_i - cy)
                if dist > radius:
                    continue
                # the area peril numbering of _write_areaperils: lon index * grid + lat index + 1
                areaperil = lon_i * GRID + lat_i + 1
                ib = max(1, peak - int(dist))
                if ib > 1:  # intensity uncertainty: split between two bins
                    rows.append((event, areaperil, ib - 1, "0.300000"))
                    rows.append((event, areaperil, ib, "0.700000"))
                else:
                    rows.append((event, areaperil, ib, "1.000000"))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def _tobin(model_data: Path, name: str, file_type: str, **kwargs: Any) -> None:
    from oasislmf.pytools.converters.csvtobin.manager import csvtobin

    csvtobin(str(model_data / f"{name}.csv"), str(model_data / f"{name}.bin"), file_type, **kwargs)


def _write_footprint(model_data: Path, name: str, rng: np.random.Generator, events: int) -> None:
    """``<name>.csv`` and oasislmf's ``<name>.bin`` and ``<name>.idx`` from it."""
    _write_csv(
        model_data / f"{name}.csv",
        ["event_id", "areaperil_id", "intensity_bin_id", "probability"],
        _footprint_rows(rng, events),
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


def _write_model_data(
    model_data: Path,
    rng: np.random.Generator,
    events: int,
    footprints: Sequence[tuple[str, np.random.Generator]] = (),
) -> None:
    """Write the model data; ``footprints`` (file stem, stream) replace the plain footprint,
    which otherwise comes from ``rng`` after the vulnerabilities."""

    def tobin(name: str, file_type: str, **kwargs: Any) -> None:
        _tobin(model_data, name, file_type, **kwargs)

    step = 1.0 / (DAMAGE_BINS - 1)
    damage = [(1, "0", "0", "0", 0)] + [
        (i + 1, f"{(i - 1) * step:.6f}", f"{i * step:.6f}", f"{(i - 0.5) * step:.6f}", 0)
        for i in range(1, DAMAGE_BINS)
    ]
    _write_csv(
        model_data / "damage_bin_dict.csv",
        ["bin_index", "bin_from", "bin_to", "interpolation", "damage_type"],
        damage,
    )
    tobin("damage_bin_dict", "damagebin", no_validation=False)
    _write_csv(
        model_data / "intensity_bin_dict.csv",
        ["bin_index", "bin_from", "bin_to", "interpolation", "interval_type"],
        [(i, 20 + 10 * i, 30 + 10 * i, 25 + 10 * i, 1202) for i in range(1, INTENSITY_BINS + 1)],
    )
    n_vulns = len(PERILS) * len(COVERAGES) * len(OCCUPANCY_CODES)
    _write_csv(
        model_data / "vulnerability.csv",
        ["vulnerability_id", "intensity_bin_id", "damage_bin_id", "probability"],
        _vulnerability_rows(rng, n_vulns),
    )
    tobin(
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
        _write_footprint(model_data, name, footprint_rng, events)
        stale -= {name + suffix for suffix in FOOTPRINT_SUFFIXES}
    for name in stale:  # e.g. a plain footprint: oasislmf could not link the chosen set
        (model_data / name).unlink()
    _write_csv(model_data / "events_p.csv", ["event_id"], ((e,) for e in range(1, events + 1)))
    tobin("events_p", "eve")
    # one event per period: period p holds event p, dated in year p
    _write_csv(
        model_data / "occurrence_lt.csv",
        ["event_id", "period_no", "occ_year", "occ_month", "occ_day"],
        ((e, e, e, 1 + e % 12, 1 + e % 28) for e in range(1, events + 1)),
    )
    tobin("occurrence_lt", "occurrence", no_of_periods=events)
    _write_csv(
        model_data / "returnperiods.csv", ["return_period"], ((rp,) for rp in RETURN_PERIODS)
    )
    tobin("returnperiods", "returnperiods")
    _write_csv(
        model_data / "quantile.csv",
        ["quantile"],
        ((q,) for q in ("0.0", "0.25", "0.5", "0.75", "1.0")),
    )
    tobin("quantile", "quantile")


def _write_areaperils(path: Path) -> None:
    """The grid cells as polygons (GeoParquet, EPSG:4326) for the built-in rtree step."""
    import geopandas as gpd  # type: ignore[import-untyped]
    from shapely.geometry import box  # type: ignore[import-untyped]

    ids, cells = [], []
    for lon_i in range(GRID):
        for lat_i in range(GRID):
            lon0, lat0 = LON_MIN + lon_i * ARC_SIZE, LAT_MIN + lat_i * ARC_SIZE
            ids.append(lon_i * GRID + lat_i + 1)
            cells.append(box(lon0, lat0, lon0 + ARC_SIZE, lat0 + ARC_SIZE))
    gdf = gpd.GeoDataFrame({"area_peril_id": ids}, geometry=cells, crs="EPSG:4326")
    gdf.to_parquet(path, index=False)


def _write_keys_data(keys_data: Path) -> None:
    _write_areaperils(keys_data / "areaperil_dict.parquet")
    vulns = []
    vuln = 0
    for peril in PERILS:
        for coverage in COVERAGES:
            for occupancy in OCCUPANCY_CODES:
                vuln += 1
                vulns.append((peril, coverage, occupancy, vuln))
    _write_csv(
        keys_data / "vulnerability_dict.csv",
        ["PERIL_ID", "COVERAGE_TYPE", "OCCUPANCYCODE", "VULNERABILITY_ID"],
        vulns,
    )
    _write_json(
        keys_data / "lookup_config.json",
        {
            "model": MODEL,
            "builtin_lookup_type": "new_lookup",
            "keys_data_path": "./",
            "step_definition": {
                "split_loc_perils_covered": {
                    "type": "split_loc_perils_covered",
                    "columns": ["locperilscovered"],
                    "parameters": {"model_perils_covered": list(PERILS)},
                },
                "peril": {
                    "type": "rtree",
                    "columns": ["latitude", "longitude"],
                    "parameters": {
                        "file_path": "%%KEYS_DATA_PATH%%/areaperil_dict.parquet",
                        "file_type": "parquet",
                        "id_columns": ["area_peril_id"],
                    },
                },
                "create_coverage_type": {
                    "type": "simple_pivot",
                    "parameters": {
                        "pivots": [{"new_cols": {"coverage_type": c}} for c in COVERAGES]
                    },
                },
                "vulnerability": {
                    "type": "merge",
                    "columns": ["peril_id", "coverage_type", "occupancycode"],
                    "parameters": {
                        "file_path": "%%KEYS_DATA_PATH%%/vulnerability_dict.csv",
                        "id_columns": ["vulnerability_id"],
                    },
                },
            },
            "strategy": [
                "split_loc_perils_covered",
                "peril",
                "create_coverage_type",
                "vulnerability",
            ],
        },
    )


def _model_settings(events: int, footprint_sets: Sequence[str] = ()) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "event_set": {
            "name": "Event Set",
            "desc": "Synthetic event set",
            "default": "p",
            "options": [{"id": "p", "desc": "Probabilistic", "number_of_events": events}],
        },
        "event_occurrence_id": {
            "name": "Occurrence Set",
            "desc": "Occurrence",
            "default": "lt",
            "options": [{"id": "lt", "desc": "Long Term"}],
        },
    }
    if footprint_sets:  # ods_tools' model settings schema: model_settings.footprint_set
        settings["footprint_set"] = {
            "name": "Footprint Set",
            "desc": "Synthetic footprint set",
            "default": footprint_sets[0],
            "options": [{"id": s, "desc": f"Footprint set {s}"} for s in footprint_sets],
        }
    return {
        "version": "3",
        "model_settings": settings,
        "lookup_settings": {"supported_perils": [{"id": p, "desc": p} for p in PERILS]},
        "model_default_samples": DEFAULT_SAMPLES,
    }


def analysis_settings(
    samples: int = DEFAULT_SAMPLES, *, footprint_set: str | None = None
) -> dict[str, Any]:
    """Analysis settings for the synthetic model: GUL and IL, every ORD output kind; the
    footprint set ``footprint_set`` if given (a model written with footprint sets has no
    plain footprint, so its runs must choose one)."""
    model_settings = {"event_set": "p", "event_occurrence_id": "lt"}
    if footprint_set is not None:
        model_settings["footprint_set"] = footprint_set
    ord_output = {
        name: True
        for name in (
            "plt_sample",
            "plt_quantile",
            "plt_moment",
            "elt_sample",
            "elt_quantile",
            "elt_moment",
            "alt_period",
            "ept_full_uncertainty_aep",
            "ept_full_uncertainty_oep",
            "ept_mean_sample_aep",
            "ept_mean_sample_oep",
            "ept_per_sample_mean_aep",
            "ept_per_sample_mean_oep",
            "psept_aep",
            "psept_oep",
            "return_period_file",
        )
    }
    return {
        "version": "3",
        "source_tag": "oasis-keda",
        "analysis_tag": "synth",
        "model_supplier_id": MODEL["supplier_id"],
        "model_name_id": MODEL["model_id"],
        "number_of_samples": samples,
        "gul_threshold": 0,
        "model_settings": model_settings,
        "gul_output": True,
        "gul_summaries": [{"id": 1, "ord_output": dict(ord_output)}],
        "il_output": True,
        "il_summaries": [{"id": 1, "ord_output": dict(ord_output)}],
    }


def _write_exposure(root: Path, rng: np.random.Generator, locations: int) -> None:
    lats = LAT_MIN + 0.01 + (LAT_MAX - LAT_MIN - 0.02) * rng.random(locations)
    lons = LON_MIN + 0.01 + (LON_MAX - LON_MIN - 0.02) * rng.random(locations)
    occupancy = rng.choice(OCCUPANCY_CODES, size=locations)
    building = rng.integers(100, 1000, size=locations) * 1000
    rows = [
        (
            1,
            "A1",
            f"L{i + 1:06d}",
            "GB",
            f"{lats[i]:.6f}",
            f"{lons[i]:.6f}",
            int(occupancy[i]),
            5000,
            "WTC",
            int(building[i]),
            0,
            int(building[i]) // 4,
            0,
            "GBP",
            "2.0.0",
        )
        for i in range(locations)
    ]
    _write_csv(
        root / "location.csv",
        [
            "PortNumber",
            "AccNumber",
            "LocNumber",
            "CountryCode",
            "Latitude",
            "Longitude",
            "OccupancyCode",
            "ConstructionCode",
            "LocPerilsCovered",
            "BuildingTIV",
            "OtherTIV",
            "ContentsTIV",
            "BITIV",
            "LocCurrency",
            "OEDVersion",
        ],
        rows,
    )
    _write_csv(
        root / "account.csv",
        [
            "PortNumber",
            "AccNumber",
            "AccCurrency",
            "PolNumber",
            "PolPerilsCovered",
            "PolInceptionDate",
            "PolExpiryDate",
            "LayerNumber",
            "LayerParticipation",
            "LayerLimit",
            "LayerAttachment",
            "OEDVersion",
        ],
        [
            (
                1,
                "A1",
                "GBP",
                "P1",
                "WTC",
                "2025-01-01",
                "2025-12-31",
                1,
                "0.5",
                locations * 200_000,
                50_000,
                "2.0.0",
            )
        ],
    )


def write_synthetic_model(
    directory: Path,
    *,
    locations: int = DEFAULT_LOCATIONS,
    events: int = DEFAULT_EVENTS,
    seed: int = 0,
    footprint_sets: Sequence[str] = (),
) -> ModelDir:
    """Write the model (data, keys, settings, exposure) under ``directory``; return it read back.

    ``footprint_sets`` (ids such as ``"s1"``): one footprint per set instead of the plain
    one, each from its own stream seeded with ``seed`` and the id, so sets differ and a set
    has the same data whatever other sets are written with it.
    """
    if locations < 1 or events < 1:
        raise ValueError("locations and events must be >= 1")
    if isinstance(footprint_sets, str):
        raise TypeError("footprint_sets must be a sequence of set ids, not one string")
    sets = tuple(footprint_sets)
    bad = [s for s in sets if not FOOTPRINT_SET_ID.fullmatch(s)]
    if bad or len(set(sets)) != len(sets):
        raise ValueError(f"footprint set ids must be distinct [A-Za-z0-9_-] names, got {sets}")
    root = Path(directory).resolve()
    model_data, keys_data, meta = root / "model_data", root / "keys_data", root / "meta-data"
    for path in (model_data, keys_data, meta):
        path.mkdir(parents=True, exist_ok=True)
    # separate streams so that changing one size leaves the other parts unchanged
    model_rng, exposure_rng = (np.random.default_rng([seed, k]) for k in (1, 2))
    footprints = [
        (f"footprint_{s}", np.random.default_rng([seed, 3, *s.encode("ascii")])) for s in sets
    ]
    _write_model_data(model_data, model_rng, events, footprints)
    _write_keys_data(keys_data)
    _write_json(meta / "model_settings.json", _model_settings(events, sets))
    _write_exposure(root, exposure_rng, locations)
    _write_json(
        root / "analysis_settings.json",
        analysis_settings(footprint_set=sets[0] if sets else None),
    )
    _write_json(
        root / "oasislmf.json",
        {
            "model_data_dir": "model_data",
            "lookup_config_json": "keys_data/lookup_config.json",
            "lookup_data_dir": "keys_data",
            "model_settings_json": "meta-data/model_settings.json",
            "analysis_settings_json": "analysis_settings.json",
            "oed_location_csv": "location.csv",
            "oed_accounts_csv": "account.csv",
            "gulmc": True,
            "modelpy": False,
            "gulpy": False,
        },
    )
    return read_model_dir(root)
