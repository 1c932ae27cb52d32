"""A model config's run options, loaded through oasislmf's own command-line machinery.

Covers: an old key name (``ktools_alloc_rule_gul``) reaches the run under its new name;
paths in the config are made absolute against the config's folder; our paths win over the
config's; ``computation_settings`` in the analysis settings are merged; keys no ``model
run`` step knows are ignored with one warning each; values of the wrong type, outside
their choices or outside oasislmf's own ranges, and the hooks the chunked pipeline does not
run, are refused with the key named; the effective options show oasislmf's defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.run_options import (
    RunOptionsError,
    check_run_options,
    effective_options,
    load_run_options,
    registered_options,
)


def _config(tmp_path: Path, **options: Any) -> Path:
    path = tmp_path / "oasislmf.json"
    path.write_text(json.dumps({"model_data_dir": "model_data", **options}), encoding="utf-8")
    return path


NO_SETTINGS = {"analysis_settings_json": ""}  # a required argument of `model run`


def test_old_key_name_reaches_the_run_renamed(tmp_path: Path) -> None:
    options = load_run_options(_config(tmp_path, ktools_alloc_rule_gul=1), overrides=NO_SETTINGS)
    assert options.arguments["kernel_alloc_rule_gul"] == 1


def test_paths_are_relative_to_the_config_and_ours_win(tmp_path: Path) -> None:
    config = _config(tmp_path, oed_location_csv="loc.csv")
    options = load_run_options(config, overrides=NO_SETTINGS)
    assert options.arguments["model_data_dir"] == str(tmp_path / "model_data")
    assert options.arguments["oed_location_csv"] == str(tmp_path / "loc.csv")
    ours = load_run_options(config, overrides={**NO_SETTINGS, "oed_location_csv": "/data/x.csv"})
    assert ours.arguments["oed_location_csv"] == "/data/x.csv"


def test_computation_settings_of_the_analysis_are_merged(tmp_path: Path) -> None:
    settings = tmp_path / "analysis_settings.json"
    settings.write_text(
        json.dumps(
            {
                "model_supplier_id": "S",
                "model_name_id": "M",
                "model_settings": {},
                "gul_output": True,
                "gul_summaries": [{"id": 1}],
                "computation_settings": {"kernel_alloc_rule_il": 3},
            }
        ),
        encoding="utf-8",
    )
    options = load_run_options(
        _config(tmp_path), overrides={"analysis_settings_json": str(settings)}
    )
    assert options.arguments["kernel_alloc_rule_il"] == 3


def test_unknown_keys_are_ignored_with_a_warning(tmp_path: Path) -> None:
    options = load_run_options(_config(tmp_path, modelpy=False, gulpy=False), overrides=NO_SETTINGS)
    assert len(options.warnings) == 2
    assert any("'modelpy'" in w and "ignored" in w for w in options.warnings)
    assert "modelpy" not in options.arguments


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kernel_alloc_rule_gul": "x"}, r"'kernel_alloc_rule_gul' must be an integer, got 'x'"),
        ({"kernel_alloc_rule_gul": 7}, r"kernel_alloc_rule_gul=7 - Not within valid ranges"),
        ({"ktools_alloc_rule_il": 9}, r"kernel_alloc_rule_il=9 - Not within valid ranges"),
        ({"kernel_alloc_rule_il": 2.5}, r"'kernel_alloc_rule_il' must be an integer, got 2.5"),
        ({"gulmc": "maybe"}, r"'gulmc' must be true or false, got 'maybe'"),
        ({"keys_format": "xml"}, r"'keys_format' must be one of oasis, json, parquet"),
        ({"peril_filter": "WTC"}, r"'peril_filter' must be a list"),
        ({"pre_loss_module": "hook.py"}, r"'pre_loss_module' names a hook"),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunOptionsError, match=message):
        registered_options(_config(tmp_path, **options))


def test_good_values_pass_and_show_with_defaults(tmp_path: Path) -> None:
    options = load_run_options(
        _config(tmp_path, gulmc="true", kernel_alloc_rule_gul=2, peril_filter=["WTC"]),
        overrides=NO_SETTINGS,
    )
    check_run_options(options)
    shown = effective_options(options)
    assert shown["kernel_alloc_rule_gul"] == 2
    assert shown["kernel_alloc_rule_il"] == 2  # oasislmf's default
    assert "model_data_dir" not in shown  # paths are not options
