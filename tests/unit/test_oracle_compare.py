"""tests.oracle's comparison functions on hand-written files (no oasislmf run).

Covers, for outputs: identical trees pass with a zero summary; rows in another order match
after the key sort (whole-number float keys too, but a whole-number loss that differs is a
value); a value 2e-6 relative off fails and 5e-7 passes; the absolute floor;
NaN against NaN passes, NaN against a number fails; an SDLoss off by more than rel*SD but
within rel*MeanLoss passes, beyond it (or with no MeanLoss column) fails; a differing key,
header or row count fails; a file missing on either side fails with its name; parquet files
are compared too, JSON files are not. For inputs: identical files pass; a differing .bin
names the byte offset; a differing CSV row names the file and row; a missing file fails
with its name; CSV and parquet keys tables with ``1`` / ``1.0`` compare equal, a different
key row fails; CSV columns may come in another order (oasislmf's own summary maps do), but
not be renamed; ``names`` restricts the comparison; files that do not matter are ignored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from tests.oracle import assert_inputs_equal, assert_outputs_equal

ELT = "EventId,SummaryId,SampleType,MeanLoss,SDLoss\n"


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    return root


def _outputs(
    tmp_path: Path, ours: dict[str, str | bytes], oracle: dict[str, str | bytes]
) -> tuple[Path, Path]:
    return _write(tmp_path / "ours", ours), _write(tmp_path / "oracle", oracle)


def _elt(*rows: str) -> str:
    return ELT + "".join(row + "\n" for row in rows)


ROWS = ("1,1,1,1000000.000000,100.000000", "1,2,1,250.500000,3.250000", "2,1,1,0.000000,0.000000")


def test_identical_outputs_pass_with_zero_summary(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"gul_S1_melt.csv": _elt(*ROWS), "analysis_settings.json": "{}"}
    ours, oracle = _outputs(tmp_path, files, {**files, "analysis_settings.json": '{"x": 1}'})
    assert assert_outputs_equal(ours, oracle) == {"gul_S1_melt.csv": 0.0}


def test_reordered_rows_match(tmp_path: Path) -> None:
    ours, oracle = _outputs(tmp_path, {"a.csv": _elt(*reversed(ROWS))}, {"a.csv": _elt(*ROWS)})
    assert_outputs_equal(ours, oracle)


@pytest.mark.parametrize(("value", "ok"), [("1000000.500000", True), ("1000002.000000", False)])
def test_relative_tolerance(tmp_path: Path, value: str, ok: bool) -> None:
    ours, oracle = _outputs(
        tmp_path,
        {"a.csv": _elt(f"1,1,1,{value},100.000000")},
        {"a.csv": _elt("1,1,1,1000000.000000,100.000000")},
    )
    if ok:
        summary = assert_outputs_equal(ours, oracle)
        assert summary["a.csv"] == pytest.approx(5e-7, rel=1e-3)
    else:
        with pytest.raises(AssertionError, match=r"a\.csv: 1 value\(s\) of MeanLoss"):
            assert_outputs_equal(ours, oracle, note="piwind")


def test_whole_number_floats_as_keys_or_values(tmp_path: Path) -> None:
    # ReturnPeriod (float, whole) sorts rows; a whole-number loss off by 1 in 3.4e6 is a value
    header = "SummaryId,ReturnPeriod,Loss\n"
    ours, oracle = _outputs(
        tmp_path,
        {"a.csv": header + "1,10.000000,3400001.000000\n1,100.000000,5.000000\n"},
        {"a.csv": header + "1,100.000000,5.000000\n1,10.000000,3400000.000000\n"},
    )
    assert assert_outputs_equal(ours, oracle)["a.csv"] == pytest.approx(1 / 3400001)


def test_absolute_floor(tmp_path: Path) -> None:
    ours, oracle = _outputs(
        tmp_path, {"a.csv": _elt("1,1,1,0.00005,0.0")}, {"a.csv": _elt("1,1,1,0.0,0.0")}
    )
    assert_outputs_equal(ours, oracle)
    with pytest.raises(AssertionError, match="MeanLoss"):
        assert_outputs_equal(ours, oracle, abs_=1e-6)


def test_nan_matches_only_nan(tmp_path: Path) -> None:
    header = "EventId,EventRate,MeanLoss\n"
    ours, oracle = _outputs(
        tmp_path,
        {"a.csv": header + "1,nan,5.0\n", "b.csv": header + "1,nan,5.0\n"},
        {"a.csv": header + "1,nan,5.0\n", "b.csv": header + "1,0.5,5.0\n"},
    )
    with pytest.raises(AssertionError, match=r"b\.csv: 1 value\(s\) of EventRate"):
        assert_outputs_equal(ours, oracle)


@pytest.mark.parametrize(("sd", "ok"), [("100.500000", True), ("102.000000", False)])
def test_sd_column_within_rel_of_mean_loss(tmp_path: Path, sd: str, ok: bool) -> None:
    ours, oracle = _outputs(
        tmp_path,
        {"a.csv": _elt(f"1,1,1,1000000.000000,{sd}")},
        {"a.csv": _elt("1,1,1,1000000.000000,100.000000")},
    )
    if ok:
        assert_outputs_equal(ours, oracle)
        # the relaxation is for SD columns only, and needs a MeanLoss to scale by
        with pytest.raises(AssertionError, match="SDLoss"):
            assert_outputs_equal(ours, oracle, sd_columns=())
    else:
        with pytest.raises(AssertionError, match="SDLoss.*ours 102.0 oracle 100.0"):
            assert_outputs_equal(ours, oracle)


def test_sd_rule_needs_mean_loss(tmp_path: Path) -> None:
    header = "SummaryId,SampleType,SDLoss\n"
    ours, oracle = _outputs(
        tmp_path, {"a.csv": header + "1,1,100.5\n"}, {"a.csv": header + "1,1,100.0\n"}
    )
    with pytest.raises(AssertionError, match="SDLoss"):
        assert_outputs_equal(ours, oracle)


@pytest.mark.parametrize(
    ("ours_text", "message"),
    [
        (_elt(ROWS[0], ROWS[1], "3,1,1,0.000000,0.000000"), "key EventId differs"),
        ("EventId,SummaryId,SampleType,MeanLoss,StdDev\n", "header differs"),
        (_elt(*ROWS[:2]), "ours 2 rows, oracle 3"),
    ],
)
def test_structural_differences_fail(tmp_path: Path, ours_text: str, message: str) -> None:
    ours, oracle = _outputs(tmp_path, {"a.csv": ours_text}, {"a.csv": _elt(*ROWS)})
    with pytest.raises(AssertionError, match=message):
        assert_outputs_equal(ours, oracle)


def test_missing_output_file_fails_with_its_name(tmp_path: Path) -> None:
    ours, oracle = _outputs(
        tmp_path,
        {"a.csv": _elt(*ROWS), "extra.csv": "x\n1\n"},
        {"a.csv": _elt(*ROWS), "il_S1_palt.csv": "x\n1\n"},
    )
    with pytest.raises(AssertionError, match=r"missing in ours \['il_S1_palt.csv'\].*extra\.csv"):
        assert_outputs_equal(ours, oracle)


def test_parquet_outputs_compared(tmp_path: Path) -> None:
    ours, oracle = tmp_path / "ours", tmp_path / "oracle"
    ours.mkdir()
    oracle.mkdir()
    frame = pd.DataFrame({"EventId": [2, 1], "Loss": [10.0, 20.0]})
    frame.to_parquet(ours / "a.parquet")
    frame.iloc[::-1].to_parquet(oracle / "a.parquet")
    assert_outputs_equal(ours, oracle)
    frame.assign(Loss=[10.0, 20.1]).to_parquet(ours / "a.parquet")
    with pytest.raises(AssertionError, match=r"a\.parquet: 1 value\(s\) of Loss"):
        assert_outputs_equal(ours, oracle)


INPUTS: dict[str, str | bytes] = {
    "items.bin": bytes(range(16)),
    "fm_programme.bin": b"\x01\x00\x00\x00",
    "items.csv": "item_id,coverage_id\n1,1\n2,2\n",
    "fm_policytc.csv": "layer_id,level_id\n1,1\n",
    "gul_summary_map.csv": "loc_id,item_id\n1,1\n",
    "keys.csv": "LocID,PerilID,AreaPerilID\n1,WSS,154\n2,WSS,155\n",
    "location.csv": "LocNumber\n1\n",  # exposure copy: not compared
}


def test_identical_inputs_pass(tmp_path: Path) -> None:
    ours = _write(tmp_path / "ours", {**INPUTS, "location.csv": "LocNumber\n9\n"})
    assert_inputs_equal(ours, _write(tmp_path / "oracle", INPUTS))


def test_csv_columns_in_another_order_match(tmp_path: Path) -> None:
    # oasislmf itself writes the summary maps' OED columns in a run-dependent order
    ours = _write(tmp_path / "ours", {**INPUTS, "gul_summary_map.csv": "item_id,loc_id\n1,1\n"})
    assert_inputs_equal(ours, _write(tmp_path / "oracle", INPUTS))
    (ours / "gul_summary_map.csv").write_text("item_id,loc_id\n1,2\n")
    with pytest.raises(AssertionError, match=r"data row 1 differs \(loc_id: '2' != '1'\)"):
        assert_inputs_equal(ours, tmp_path / "oracle")
    (ours / "gul_summary_map.csv").write_text("item_id,LocNumber\n1,1\n")
    with pytest.raises(AssertionError, match="gul_summary_map.csv: header differs"):
        assert_inputs_equal(ours, tmp_path / "oracle")


def test_differing_bin_names_offset(tmp_path: Path) -> None:
    ours = _write(tmp_path / "ours", {**INPUTS, "items.bin": bytes(range(10)) + b"\xff" * 6})
    with pytest.raises(AssertionError, match=r"items\.bin: bytes differ from offset 10"):
        assert_inputs_equal(ours, _write(tmp_path / "oracle", INPUTS))


def test_differing_csv_row_named(tmp_path: Path) -> None:
    ours = _write(tmp_path / "ours", {**INPUTS, "items.csv": "item_id,coverage_id\n1,1\n2,3\n"})
    with pytest.raises(AssertionError, match=r"items\.csv: data row 2 differs.*'3'.*'2'"):
        assert_inputs_equal(ours, _write(tmp_path / "oracle", INPUTS))


@pytest.mark.parametrize("name", ["fm_programme.bin", "fm_policytc.csv", "keys.csv"])
def test_missing_input_fails_with_its_name(tmp_path: Path, name: str) -> None:
    ours = _write(tmp_path / "ours", {k: v for k, v in INPUTS.items() if k != name})
    missing = name.removesuffix(".csv") if name == "keys.csv" else name
    with pytest.raises(AssertionError, match=f"{missing}: missing in ours"):
        assert_inputs_equal(ours, _write(tmp_path / "oracle", INPUTS))
    with pytest.raises(AssertionError, match=f"{missing}: missing in the oracle"):
        assert_inputs_equal(_write(tmp_path / "oracle", INPUTS), ours)


def test_keys_csv_against_parquet(tmp_path: Path) -> None:
    ours = _write(tmp_path / "ours", {"keys/keys.csv": "LocID,PerilID,AreaPerilID\n1,WSS,154.0\n"})
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    keys = pd.DataFrame({"LocID": [1], "PerilID": ["WSS"], "AreaPerilID": [154]})
    keys.astype({"AreaPerilID": "Int64"}).to_parquet(oracle / "keys.parquet")
    assert_inputs_equal(ours, oracle)
    keys.assign(AreaPerilID=[155]).to_parquet(oracle / "keys.parquet")
    with pytest.raises(AssertionError, match=r"keys: data row 1 differs.*'154'.*'155'"):
        assert_inputs_equal(ours, oracle)


def test_names_restrict_the_comparison(tmp_path: Path) -> None:
    ours = _write(tmp_path / "ours", {**INPUTS, "items.bin": b"different"})
    oracle = _write(tmp_path / "oracle", INPUTS)
    assert_inputs_equal(ours, oracle, names=["items.csv", "fm_programme.bin", "keys"])
    with pytest.raises(AssertionError, match="items.bin"):
        assert_inputs_equal(ours, oracle)
