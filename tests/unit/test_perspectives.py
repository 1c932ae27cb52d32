"""Which perspectives run, and the warnings for those dropped (as oasislmf drops them)."""

from __future__ import annotations

from oasis_keda.core.perspectives import PortfolioFiles, dropped, runs_nothing, without

ALL = {"gul_output": True, "il_output": True, "ri_output": True, "ri_summaries": [{"id": 1}]}
FM = ["fm_policytc.bin", "fm_profile.bin", "fm_programme.bin", "fm_xref.csv"]


def _warnings(
    settings: dict[str, object], files: PortfolioFiles, names: list[str] | None
) -> list[str]:
    return [d.warning for d in dropped(settings, files, names)]


def test_nothing_dropped_with_every_file_and_input() -> None:
    files = PortfolioFiles(accounts=True, ri_info=True, ri_scope=True)
    assert dropped(ALL, files, [*FM, "RI_1"]) == []
    assert dropped(ALL, files, None) == []


def test_location_only_drops_il_and_ri_naming_what_is_missing() -> None:
    files = PortfolioFiles(accounts=False, ri_info=False, ri_scope=False)
    assert _warnings(ALL, files, None) == [
        "IL losses (il_output) are dropped: the portfolio has no accounts file",
        (
            "RI losses (ri_output) are dropped: the portfolio has no accounts file, "
            "reinsurance info file and reinsurance scope file"
        ),
    ]
    kept = without(ALL, dropped(ALL, files, None))
    assert kept["gul_output"] and not kept["il_output"] and not kept["ri_output"]
    assert kept["ri_summaries"] == [] and not runs_nothing(kept)


def test_incomplete_reinsurance_names_the_missing_file() -> None:
    files = PortfolioFiles(accounts=True, ri_info=True, ri_scope=False)
    assert _warnings({"ri_output": True}, files, None) == [
        "RI losses (ri_output) are dropped: the portfolio has no reinsurance scope file"
    ]


def test_inputs_generated_without_the_files_say_generate_again() -> None:
    files = PortfolioFiles(accounts=True, ri_info=True, ri_scope=True)
    found = _warnings(ALL, files, ["items.bin"])
    assert found == [
        (
            "IL losses (il_output) are dropped: the input files were generated without an "
            "accounts file; generate inputs again"
        ),
        (
            "RI losses (ri_output) are dropped: the input files were generated without "
            "reinsurance files; generate inputs again"
        ),
    ]


def test_nothing_left_to_run() -> None:
    files = PortfolioFiles(accounts=False, ri_info=False, ri_scope=False)
    settings = {"gul_output": False, "il_output": True}
    assert runs_nothing(without(settings, dropped(settings, files, None)))
