"""Which loss perspectives an analysis can run, and why the others are dropped.

oasislmf runs the perspectives an analysis's settings ask for whose input files exist, and
drops the rest with a warning: insured losses (``il_output``) need the financial-module
files that an accounts file gives; reinsurance (``ri_output``, ``rl_output``) needs the
``RI_<n>`` folders that oasislmf writes only when the accounts, reinsurance info and
reinsurance scope files are all present. A request is never refused for that. The
request (to record the warning), the input generation (to pass the reinsurance files only
when all three are present) and the loss run (to drop what cannot run) all decide with
the functions here, so they say the same thing.

PURE: the caller says which files the portfolio has and, for a loss run, which names
its input directory holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Financial-module input files oasislmf needs for insured losses (.bin or .csv).
FM_FILES = ("fm_policytc", "fm_profile", "fm_programme", "fm_xref")
_RI_DIR = re.compile(r"RI_\d+$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PortfolioFiles:
    """Which exposure files a portfolio has."""

    accounts: bool
    ri_info: bool
    ri_scope: bool

    @property
    def missing_for_ri(self) -> list[str]:
        """The files reinsurance needs that the portfolio lacks."""
        return [
            name
            for name, present in (
                ("accounts file", self.accounts),
                ("reinsurance info file", self.ri_info),
                ("reinsurance scope file", self.ri_scope),
            )
            if not present
        ]

    @property
    def has_ri(self) -> bool:
        return not self.missing_for_ri


@dataclasses.dataclass(frozen=True)
class Dropped:
    """A requested perspective that will not run, and why."""

    output: str
    """The settings key: ``il_output``, ``ri_output`` or ``rl_output``."""
    reason: str

    @property
    def warning(self) -> str:
        label = self.output.removesuffix("_output").upper()
        return f"{label} losses ({self.output}) are dropped: {self.reason}"


def _joined(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def has_fm_inputs(names: Iterable[str]) -> bool:
    present = set(names)
    return all(f"{n}.bin" in present or f"{n}.csv" in present for n in FM_FILES)


def has_ri_inputs(names: Iterable[str]) -> bool:
    return any(_RI_DIR.match(n) for n in names)


def dropped(
    settings: Mapping[str, Any],
    files: PortfolioFiles,
    input_names: Iterable[str] | None = None,
) -> list[Dropped]:
    """The perspectives ``settings`` ask for that cannot run. ``input_names`` are the names
    in the generated input directory (None before inputs exist: judged on the portfolio)."""
    names = None if input_names is None else list(input_names)
    out: list[Dropped] = []
    if settings.get("il_output"):
        if not files.accounts:
            out.append(Dropped("il_output", "the portfolio has no accounts file"))
        elif names is not None and not has_fm_inputs(names):
            out.append(
                Dropped(
                    "il_output",
                    "the input files were generated without an accounts file; "
                    "generate inputs again",
                )
            )
    for output in ("ri_output", "rl_output"):
        if not settings.get(output):
            continue
        missing = files.missing_for_ri
        if missing:
            out.append(Dropped(output, f"the portfolio has no {_joined(missing)}"))
        elif names is not None and not has_ri_inputs(names):
            out.append(
                Dropped(
                    output,
                    "the input files were generated without reinsurance files; "
                    "generate inputs again",
                )
            )
    return out


def without(settings: Mapping[str, Any], drops: Iterable[Dropped]) -> dict[str, Any]:
    """``settings`` with the dropped perspectives turned off, as oasislmf turns them off."""
    out = dict(settings)
    for drop in drops:
        out[drop.output] = False
        out[drop.output.replace("_output", "_summaries")] = []
    return out


def runs_nothing(settings: Mapping[str, Any]) -> bool:
    """True when no perspective is left (oasislmf refuses such settings)."""
    return not any(settings.get(k) for k in ("gul_output", "il_output", "ri_output"))
