"""The synthetic model's shape, shared by every part, and the CSV and JSON writers."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_LOCATIONS = 40
DEFAULT_EVENTS = 60
DEFAULT_SAMPLES = 8
#: ``oasis-keda model synth``'s default: each event touches 2% of the area perils, as a
#: real model's footprint touches a small part of its area perils per event.
DEFAULT_FOOTPRINT_DENSITY = 0.02

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


def areaperil_id(lon_i: int, lat_i: int) -> int:
    """The area peril of grid cell (lon index, lat index): lon index * grid + lat index + 1."""
    return lon_i * GRID + lat_i + 1


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
