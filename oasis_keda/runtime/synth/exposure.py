"""The portfolio: an OED location file (one account, locations spread over the grid) and an
account file (one policy, one layer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oasis_keda.runtime.synth.common import (
    LAT_MAX,
    LAT_MIN,
    LON_MAX,
    LON_MIN,
    OCCUPANCY_CODES,
    write_csv,
)

LOCATION_COLUMNS = (
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
)
ACCOUNT_COLUMNS = (
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
)


def write_exposure(root: Path, rng: np.random.Generator, locations: int) -> None:
    """``location.csv`` and ``account.csv`` under ``root``."""
    lats = LAT_MIN + 0.01 + (LAT_MAX - LAT_MIN - 0.02) * rng.random(locations)
    lons = LON_MIN + 0.01 + (LON_MAX - LON_MIN - 0.02) * rng.random(locations)
    occupancy = rng.choice(OCCUPANCY_CODES, size=locations)
    building = rng.integers(100, 1000, size=locations) * 1000
    rows = [
        (1, "A1", f"L{i + 1:06d}", "GB", f"{lats[i]:.6f}", f"{lons[i]:.6f}", int(occupancy[i]),
         5000, "WTC", int(building[i]), 0, int(building[i]) // 4, 0, "GBP", "2.0.0")
        for i in range(locations)
    ]  # fmt: skip
    write_csv(root / "location.csv", LOCATION_COLUMNS, rows)
    account = (1, "A1", "GBP", "P1", "WTC", "2025-01-01", "2025-12-31", 1, "0.5",
               locations * 200_000, 50_000, "2.0.0")  # fmt: skip
    write_csv(root / "account.csv", ACCOUNT_COLUMNS, [account])
