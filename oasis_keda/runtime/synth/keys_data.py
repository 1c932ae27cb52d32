"""``keys_data/``: what oasislmf's built-in lookup reads. An ``rtree`` step maps coordinates
to area perils (the grid cells as polygons, as PiWind does) and a ``merge`` step maps
(peril, coverage, occupancy) to vulnerabilities."""

from __future__ import annotations

from pathlib import Path

from oasis_keda.runtime.synth.common import (
    ARC_SIZE,
    COVERAGES,
    GRID,
    LAT_MIN,
    LON_MIN,
    MODEL,
    OCCUPANCY_CODES,
    PERILS,
    areaperil_id,
    write_csv,
    write_json,
)


def _write_areaperils(path: Path) -> None:
    """The grid cells as polygons (GeoParquet, EPSG:4326) for the built-in rtree step."""
    import geopandas as gpd  # type: ignore[import-untyped]
    from shapely.geometry import box  # type: ignore[import-untyped]

    ids, cells = [], []
    for lon_i in range(GRID):
        for lat_i in range(GRID):
            lon0, lat0 = LON_MIN + lon_i * ARC_SIZE, LAT_MIN + lat_i * ARC_SIZE
            ids.append(areaperil_id(lon_i, lat_i))
            cells.append(box(lon0, lat0, lon0 + ARC_SIZE, lat0 + ARC_SIZE))
    gdf = gpd.GeoDataFrame({"area_peril_id": ids}, geometry=cells, crs="EPSG:4326")
    gdf.to_parquet(path, index=False)


def write_keys_data(keys_data: Path) -> None:
    _write_areaperils(keys_data / "areaperil_dict.parquet")
    vulns = []
    vuln = 0
    for peril in PERILS:
        for coverage in COVERAGES:
            for occupancy in OCCUPANCY_CODES:
                vuln += 1
                vulns.append((peril, coverage, occupancy, vuln))
    write_csv(
        keys_data / "vulnerability_dict.csv",
        ["PERIL_ID", "COVERAGE_TYPE", "OCCUPANCYCODE", "VULNERABILITY_ID"],
        vulns,
    )
    write_json(
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
