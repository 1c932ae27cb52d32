"""The reference for exactness tests: oasislmf's own, unchunked ``oasislmf model run``.

Our chunked lookup and loss stages must give what oasislmf gives when it runs the whole
portfolio in one go. :func:`oracle_run` produces that reference by running the real CLI on
the model's own ``oasislmf.json`` with only the inputs changed (exposure files, analysis
settings; reinsurance always dropped). :func:`assert_inputs_equal` and
:func:`assert_outputs_equal` then compare our files with it, the inputs exactly and the
losses within a float32-summation tolerance.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

DEFAULT_NUMBA_CACHE_DIR = Path.home() / ".cache" / "oasis-keda" / "numba"
INPUT_CSV_STEMS = ("items", "coverages", "correlations", "gul_summary_map", "fm_summary_map")
KEYS_TABLES = ("keys", "keys-errors")
LOG_TAIL_LINES = 60


@dataclass(frozen=True)
class OracleRun:
    """One finished ``oasislmf model run``: its directory, Oasis inputs, outputs and log."""

    run_dir: Path
    input_dir: Path
    output_dir: Path
    log: Path


_MEMO: dict[tuple[object, ...], OracleRun] = {}  # one run per distinct oracle per session
_BIN = Path(sys.executable).parent  # oasislmf's script and the run script's tools live here


def _tree_stamp(root: Path) -> str:
    """Sizes and modification times of every file under ``root``: a model rewritten in
    place gets a new oracle."""
    stamp = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            stamp.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return stamp.hexdigest()


def _digest(path: Path | None) -> str:
    return "" if path is None else hashlib.sha256(path.read_bytes()).hexdigest()


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OASIS_ENV_OVERRIDE", None)  # it would let OASIS_* variables beat our arguments
    env.setdefault("NUMBA_CACHE_DIR", str(DEFAULT_NUMBA_CACHE_DIR))
    Path(env["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    env["PATH"] = os.pathsep.join([str(_BIN), env.get("PATH", "")])
    return env


def oracle_run(
    model_dir: Path,
    *,
    location: Path,
    accounts: Path | None,
    settings: Mapping[str, Any] | Path,
    run_dir: Path,
    config: Path | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 3600.0,
    reuse: bool = True,
    ri_info: Path | None = None,
    ri_scope: Path | None = None,
) -> OracleRun:
    """Run ``oasislmf model run`` unchunked on the model's config; memoised per session.

    Only the exposure (``accounts=None`` runs without accounts) and the analysis settings
    replace the config's. Without ``ri_info`` and ``ri_scope`` reinsurance is dropped (the
    RI paths are passed as ``''``, which oasislmf treats as unset, and ``ri_output`` is
    forced false); with them, the settings' ``ri_output`` stands. A memo hit returns the
    earlier run, which lives in *its* ``run_dir``: use the returned paths, read-only.
    """
    config = (config or model_dir / "oasislmf.json").resolve()
    loaded = json.loads(settings.read_text("utf-8")) if isinstance(settings, Path) else settings
    with_ri = ri_info is not None and ri_scope is not None
    forced = {} if with_ri else {"ri_output": False}
    settings_text = json.dumps({**loaded, **forced}, indent=2, sort_keys=True)
    paths = (model_dir, location, accounts, config, ri_info, ri_scope)
    key = (
        *(None if p is None else str(p.resolve()) for p in paths),
        tuple(extra_args),
        hashlib.sha256(settings_text.encode()).hexdigest(),
        *(_digest(p) for p in (location, accounts, config, ri_info, ri_scope)),
        _tree_stamp(model_dir),
    )
    cached = _MEMO.get(key) if reuse else None
    if cached is not None and cached.output_dir.is_dir():
        logger.info("oracle: reusing %s", cached.run_dir)
        return cached

    run_dir = run_dir.resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    settings_file = run_dir.parent / f"{run_dir.name}.analysis_settings.json"
    settings_file.write_text(settings_text, encoding="utf-8")
    log = run_dir.parent / f"{run_dir.name}.log"
    command = [
        *(str(_BIN / "oasislmf"), "model", "run", "-C", str(config)),
        *("--model-run-dir", str(run_dir), "--oed-location-csv", str(location.resolve())),
        *("--oed-accounts-csv", "" if accounts is None else str(accounts.resolve())),
        *("--oed-info-csv", str(ri_info.resolve()) if ri_info and ri_scope else ""),
        *("--oed-scope-csv", str(ri_scope.resolve()) if ri_info and ri_scope else ""),
        *("--analysis-settings-json", str(settings_file), *extra_args),
    ]
    logger.info("oracle: %s", shlex.join(command))
    with tempfile.TemporaryDirectory(prefix="oracle-cwd-") as cwd, log.open("wb") as out:
        env = _environment()
        proc = subprocess.Popen(  # own session: a timeout or ^C ends the whole pipeline
            command, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if code is None:
        raise AssertionError(f"oracle timed out ({timeout}s), {log}:\n{_tail(log)}")
    result = OracleRun(run_dir, run_dir / "input", run_dir / "output", log)
    if code != 0 or not result.output_dir.is_dir():
        raise AssertionError(f"oracle failed (exit {code}), {log}:\n{_tail(log)}")
    _MEMO[key] = result
    return result


def _input_names(root: Path) -> set[str]:
    """Loss-relevant input files under ``root``, relative; keys tables by bare name."""
    names = set()
    for p in root.rglob("*"):
        if p.suffix == ".bin" or (
            p.suffix == ".csv" and (p.stem in INPUT_CSV_STEMS or p.stem.startswith("fm_"))
        ):
            names.add(str(p.relative_to(root)))
        elif p.stem in KEYS_TABLES and p.suffix in (".csv", ".parquet"):
            names.add(p.stem)
    return names


#: What ``model run``'s loss stage adds to its ``input`` folder (and subfolders: gul/, il/...)
LOSS_STAGE_INPUTS = ("events.", "occurrence.", "periods.", "returnperiods.", "quantile.")


def _generated(root: Path) -> set[str]:
    """The input files the input stage writes, out of an oracle's ``input`` folder."""
    return {
        name
        for name in _input_names(root)
        if "/" not in name and not name.startswith(LOSS_STAGE_INPUTS) and "summaryxref" not in name
    }


def _find_keys_table(root: Path, name: str) -> Path | None:
    """The shallowest ``<name>.csv`` or ``<name>.parquet`` anywhere under ``root``."""
    found = [p for p in root.rglob(f"{name}.*") if p.suffix in (".csv", ".parquet")]
    return min(found, key=lambda p: (len(p.parts), p.suffix), default=None)


def _norm(value: object) -> str:
    """A cell as text, so that ``1``, ``1.0`` and ``'1'`` (csv vs parquet) compare equal."""
    text = "" if value is None or value is pd.NA else str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isnan(number):
        return ""
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _read_rows(path: Path, *, normalise: bool) -> tuple[list[str], list[list[str]]]:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        rows = frame.astype(object).itertuples(index=False, name=None)
        return [str(c) for c in frame.columns], [[_norm(v) for v in row] for row in rows]
    with path.open(newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    header, rows = (lines[0] if lines else []), lines[1:]
    return header, [[_norm(v) for v in row] for row in rows] if normalise else rows


def _assert_rows_equal(name: str, ours: Path, oracle: Path, *, normalise: bool) -> None:
    if ours.read_bytes() == oracle.read_bytes():
        return
    h_a, rows_a = _read_rows(ours, normalise=normalise)
    h_b, rows_b = _read_rows(oracle, normalise=normalise)
    # same columns in any order: oasislmf orders the summary maps' OED columns as a set
    assert sorted(h_a) == sorted(h_b), f"{name}: header differs: ours {h_a} != oracle {h_b}"
    if h_a != h_b:
        order = [h_a.index(h) for h in h_b]
        h_a, rows_a = h_b, [[row[j] for j in order] for row in rows_a]
    for i, (a, b) in enumerate(zip(rows_a, rows_b, strict=False)):
        if a != b:
            cells = [f"{h}: {x!r} != {y!r}" for h, x, y in zip(h_a, a, b, strict=False) if x != y]
            raise AssertionError(
                f"{name}: data row {i + 1} differs ({', '.join(cells)}): ours {a} != oracle {b}"
            )
    assert len(rows_a) == len(rows_b), f"{name}: ours {len(rows_a)} rows, oracle {len(rows_b)}"


def _assert_bytes_equal(name: str, ours: Path, oracle: Path) -> None:
    a, b = ours.read_bytes(), oracle.read_bytes()
    if a != b:
        n = min(len(a), len(b))
        differ = np.frombuffer(a[:n], np.uint8) != np.frombuffer(b[:n], np.uint8)
        at = int(np.argmax(differ)) if differ.any() else n
        raise AssertionError(
            f"{name}: bytes differ from offset {at} (sizes ours {len(a)}, oracle {len(b)})"
        )


def assert_inputs_equal(ours: Path, oracle: Path, *, names: Iterable[str] | None = None) -> None:
    """The loss-relevant Oasis input files of both directories are identical.

    ``*.bin`` byte for byte; items/coverages/fm_*/correlations/summary-map CSVs row for row
    (same columns, in any order); ``keys`` and ``keys-errors`` (csv or parquet, at any
    depth, named without suffix) as tables of normalised text. ``names`` (relative paths,
    or those two bare names) restricts the comparison. By default: the files of ours, and
    every file of the oracle's input stage (its ``input`` folder also holds what its loss
    stage added, such as ``events.bin`` and ``gul/``: those are left out).
    """
    wanted = set(names) if names is not None else _input_names(ours) | _generated(oracle)
    assert wanted, f"no Oasis input files in {ours} or {oracle}"
    for name in sorted(wanted):
        is_keys = name in KEYS_TABLES
        a = _find_keys_table(ours, name) if is_keys else ours / name
        b = _find_keys_table(oracle, name) if is_keys else oracle / name
        assert a is not None and a.is_file(), f"{name}: missing in ours ({ours})"
        assert b is not None and b.is_file(), f"{name}: missing in the oracle ({oracle})"
        if a.suffix == ".bin":
            _assert_bytes_equal(name, a, b)
        else:
            _assert_rows_equal(name, a, b, normalise=is_keys)


def _is_key(a: Any, b: Any) -> bool:
    """A sort/match key: written as integers or text in both files (EventId, Period, ...),
    or whole numbers in both (ReturnPeriod). A float column that merely happens to hold
    whole numbers (a loss of exactly 3400000) is a key only if both hold the same values."""
    types = pd.api.types
    if all(types.is_integer_dtype(c) or not types.is_numeric_dtype(c) for c in (a, b)):
        return True
    if not (types.is_numeric_dtype(a) and types.is_numeric_dtype(b)):
        return False
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    whole = all(np.isfinite(v).all() and (v == np.round(v)).all() for v in (x, y))
    return bool(whole and np.array_equal(np.sort(x), np.sort(y)))


def _key_values(column: Any) -> Any:
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=float)
    return column.astype(str).to_numpy()


def _floats(name: str, frame: Any, col: str) -> Any:
    try:
        return frame[col].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: column {col} is not numeric in both files") from None


def _rows(a: Any, b: Any, i: int) -> str:
    row_a, row_b = (f.iloc[[i]].to_dict("records")[0] for f in (a, b))
    return f"\n ours   {row_a}\n oracle {row_b}"


def _compare_frame(name: str, a: Any, b: Any, rel: float, abs_: float, sd: set[str]) -> float:
    """Check one output table; return its max relative difference."""
    header_a, header_b = list(a.columns), list(b.columns)
    assert header_a == header_b, f"{name}: header differs: ours {header_a} != oracle {header_b}"
    assert len(a) == len(b), f"{name}: ours {len(a)} rows, oracle {len(b)}"
    keys = [c for c in header_a if _is_key(a[c], b[c])]
    if keys:
        a = a.sort_values(keys, kind="stable").reset_index(drop=True)
        b = b.sort_values(keys, kind="stable").reset_index(drop=True)
    for col in keys:
        bad = np.flatnonzero(_key_values(a[col]) != _key_values(b[col]))
        if bad.size:
            i = int(bad[0])
            raise AssertionError(f"{name}: key {col} differs at sorted row {i}" + _rows(a, b, i))
    worst = 0.0
    for col in (c for c in header_a if c not in keys):
        x, y = _floats(name, a, col), _floats(name, b, col)
        diff = np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y))  # NaN vs number: NaN
        scale = np.fmax(np.abs(x), np.abs(y))
        tol = np.fmax(abs_, rel * scale)
        if col in sd and "MeanLoss" in header_a:
            mean_a, mean_b = _floats(name, a, "MeanLoss"), _floats(name, b, "MeanLoss")
            tol = np.fmax(tol, rel * np.fmax(np.abs(mean_a), np.abs(mean_b)))
        relative = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > abs_)
        worst = max(worst, float(np.nan_to_num(relative, nan=np.inf).max(initial=0.0)))
        bad = np.flatnonzero(~(diff <= tol))
        if bad.size:
            i = int(bad[np.argmax(np.nan_to_num(diff[bad] - tol[bad], nan=np.inf))])
            raise AssertionError(
                f"{name}: {bad.size} value(s) of {col} out of tolerance; worst at sorted row "
                f"{i}: ours {float(x[i])!r} oracle {float(y[i])!r} "
                f"(diff {diff[i]:.3g}, tol {tol[i]:.3g})" + _rows(a, b, i)
            )
    return worst


def assert_outputs_equal(
    ours: Path,
    oracle: Path,
    *,
    rel: float = 1e-6,
    abs_: float = 1e-4,
    sd_columns: Sequence[str] = ("SDLoss",),
    note: str = "",
) -> dict[str, float]:
    """The same CSV/parquet output files, equal within tolerance; returns max rel diff per file.

    Rows are matched after a stable sort on the integer-valued (key) columns, which must be
    equal; other numbers must satisfy ``|a-b| <= max(abs_, rel*max(|a|,|b|))``, standard
    deviations may instead be off by ``rel * MeanLoss`` of their row. JSON files are not
    compared: oasislmf's ``analysis_settings.json`` copies are its merged settings.
    """
    prefix = f"{note}: " if note else ""

    def files(root: Path) -> set[str]:
        found = (p for p in root.rglob("*") if p.suffix in (".csv", ".parquet") and p.is_file())
        return {str(p.relative_to(root)) for p in found}

    mine, theirs = files(ours), files(oracle)
    assert theirs, f"{prefix}no output files in the oracle {oracle}"
    assert mine == theirs, (
        f"{prefix}output files differ: missing in ours {sorted(theirs - mine)}, "
        f"extra in ours {sorted(mine - theirs)}"
    )
    summary: dict[str, float] = {}
    for name in sorted(theirs):
        read = pd.read_parquet if name.endswith(".parquet") else pd.read_csv
        a, b = read(ours / name), read(oracle / name)
        try:
            summary[name] = _compare_frame(name, a, b, rel, abs_, set(sd_columns))
        except AssertionError as exc:
            raise AssertionError(f"{prefix}{exc}") from None
    worst = max(summary, key=lambda n: summary[n])
    logger.info("%soutputs equal; worst relative diff %.3g in %s", prefix, summary[worst], worst)
    return summary
