"""Exposure of our own making on the synthetic model's grid, richer than its default.

``layered_portfolio`` writes several portfolios of several accounts, location deductibles
and limits on buildings and contents, account-level (policy) deductibles and limits, and
two layers on some accounts: the shapes of financial structure whose input files and
insured losses must come out exactly as oasislmf's own run gives them.
``reinsurance_programme`` writes a programme over such a portfolio with three inuring
priorities: a quota share on one portfolio, a location-level surplus share on some
locations of several accounts, and a catastrophe excess of loss over everything.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from oasis_keda.runtime import synth

LOCATION_HEADER = (
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
    "LocPeril",
    "LocDedType1Building",
    "LocLimitType1Building",
    "LocDedType3Contents",
    "LocLimitType3Contents",
    "LocDed1Building",
    "LocLimit1Building",
    "LocDed3Contents",
    "LocLimit3Contents",
    "OEDVersion",
)
ACCOUNT_HEADER = (
    "PortNumber",
    "AccNumber",
    "AccCurrency",
    "PolNumber",
    "PolPerilsCovered",
    "PolInceptionDate",
    "PolExpiryDate",
    "PolPeril",
    "PolDedType6All",
    "PolLimitType6All",
    "PolDed6All",
    "PolLimit6All",
    "LayerNumber",
    "LayerParticipation",
    "LayerLimit",
    "LayerAttachment",
    "OEDVersion",
)


def _write(path: Path, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def layered_portfolio(
    directory: Path, *, portfolios: int = 2, accounts: int = 3, locations: int = 36, seed: int = 7
) -> tuple[Path, Path]:
    """Write ``location.csv`` and ``account.csv`` under ``directory``; return their paths."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    owners = [(p, f"ACC{p}{a}") for p in range(1, portfolios + 1) for a in range(1, accounts + 1)]
    loc_rows: list[tuple[object, ...]] = []
    for i in range(locations):
        port, acc = owners[i % len(owners)]
        building = int(rng.integers(100, 1000)) * 1000
        contents = building // 4
        # some locations carry no terms: empty cells, as OED allows
        ded_b = int(building * rng.choice((0.0, 0.01, 0.05))) or ""
        lim_b = int(building * rng.choice((1.0, 0.8, 0.5))) if i % 3 else ""
        ded_c = int(rng.choice((0, 500, 2000))) or ""
        lim_c = int(contents * 0.6) if i % 4 == 1 else ""
        loc_rows.append(
            (
                port,
                acc,
                f"L{i + 1:05d}",
                "GB",
                f"{synth.LAT_MIN + 0.01 + 0.98 * rng.random():.6f}",
                f"{synth.LON_MIN + 0.01 + 0.98 * rng.random():.6f}",
                int(rng.choice(synth.OCCUPANCY_CODES)),
                5000,
                "WTC",
                building,
                0,
                contents,
                0,
                "GBP",
                "WTC",
                0,
                0,
                0,
                0,
                ded_b,
                lim_b,
                ded_c,
                lim_c,
                "2.0.0",
            )
        )
    acc_rows: list[tuple[object, ...]] = []
    for n, (port, acc) in enumerate(owners):
        layers = 2 if n % 2 == 0 else 1
        for layer in range(1, layers + 1):
            acc_rows.append(
                (
                    port,
                    acc,
                    "GBP",
                    f"POL{n + 1}-{layer}",
                    "WTC",
                    "2025-01-01",
                    "2025-12-31",
                    "WTC",
                    0,
                    0,
                    int(rng.choice((0, 1000, 10_000))) or "",
                    int(rng.integers(2, 6)) * 1_000_000 if n % 3 else "",
                    layer,
                    "1.0" if layer == 1 else "0.5",
                    1_000_000 if layer == 1 else 3_000_000,
                    0 if layer == 1 else 1_000_000,
                    "2.0.0",
                )
            )
    return (
        _write(directory / "location.csv", LOCATION_HEADER, loc_rows),
        _write(directory / "account.csv", ACCOUNT_HEADER, acc_rows),
    )


RI_INFO_HEADER = (
    "ReinsNumber",
    "ReinsLayerNumber",
    "ReinsName",
    "ReinsPeril",
    "ReinsInceptionDate",
    "ReinsExpiryDate",
    "CededPercent",
    "RiskLimit",
    "RiskAttachment",
    "OccLimit",
    "OccAttachment",
    "PlacedPercent",
    "ReinsCurrency",
    "InuringPriority",
    "ReinsType",
    "RiskLevel",
    "UseReinsDates",
    "OEDVersion",
)
RI_SCOPE_HEADER = (
    "ReinsNumber",
    "PortNumber",
    "AccNumber",
    "PolNumber",
    "LocGroup",
    "LocNumber",
    "CedantName",
    "ProducerName",
    "LOB",
    "CountryCode",
    "ReinsTag",
    "CededPercent",
    "OEDVersion",
)


def reinsurance_programme(directory: Path, location_file: Path) -> tuple[Path, Path]:
    """Write ``ri_info.csv`` and ``ri_scope.csv`` for the portfolio of ``location_file``:
    inuring priority 1, a 30% quota share of portfolio 1 (70% placed); priority 2, a
    location-level surplus share ceding 10-60% of every third location, across accounts
    and portfolios; priority 3, a catastrophe excess of loss (2m xs 500k per occurrence)
    over every portfolio."""
    with location_file.open(newline="", encoding="utf-8") as fh:
        locations = list(csv.DictReader(fh))
    portfolios = sorted({row["PortNumber"] for row in locations})
    common = ("WTC", "2025-01-01", "2025-12-31")
    info = [
        (1, 1, "QS port 1", *common, 0.3, 0, 0, 0, 0, 0.7, "GBP", 1, "QS", "", "N", "2.0.0"),
        (2, 1, "SS loc", *common, 1, 0, 0, 0, 0, 1, "GBP", 2, "SS", "LOC", "N", "2.0.0"),
        (3, 1, "CXL", *common, 1, 0, 0, 2_000_000, 500_000, 1, "GBP", 3, "CXL", "", "N", "2.0.0"),
    ]
    scope: list[tuple[object, ...]] = [(1, portfolios[0], *[""] * 9, "", "2.0.0")]
    for i, row in enumerate(locations[::3]):
        share = 0.1 + 0.1 * (i % 6)
        scope.append(
            (2, row["PortNumber"], row["AccNumber"], "", "", row["LocNumber"])
            + ("", "", "", "", "", f"{share:.1f}", "2.0.0")
        )
    scope.extend((3, port, *[""] * 9, "", "2.0.0") for port in portfolios)
    return (
        _write(directory / "ri_info.csv", RI_INFO_HEADER, info),
        _write(directory / "ri_scope.csv", RI_SCOPE_HEADER, scope),
    )
