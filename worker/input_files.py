"""oasislmf's input files, written by its own step, whole or in two parts side by side.

:func:`write_input_files` runs oasislmf's input-file step (``GenerateFiles``) on the keys
with the exposure loaded as ``oasislmf model run`` loads it. The step builds the GUL input
items from exposure and keys, writes the GUL files (items, coverages, correlations, the
exposure summary, the summary levels and the GUL summary map), then builds the IL items
from them and writes the FM files, the FM summary map and the reinsurance files. Both
halves need the GUL items, so each part runs the same step over the same inputs with the
other half's writers left out:

- ``gul``: the step as it is, stopped when it starts on the IL items;
- ``fm``: the step as it is, with the GUL writers (files, exposure summary, summary levels,
  GUL summary map) doing nothing.

The files each part writes are therefore those of the whole step, written by the same
code from the same data; :func:`merge_parts` puts them together (hard links) as one
directory. Files both parts write (the exposure and keys files the step copies in) come
from the same code over the same inputs; the merge checks their sizes agree. The tests in
``tests/integration/test_oracle_*.py`` compare the merged directory byte for byte with
``oasislmf model run``'s own input files (docs/EXACTNESS.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal
from unittest import mock

from worker import file_memo
from worker.errors import InputError, TransientError
from worker.run_options import RunOptions
from worker.staging import staging_dir

logger = logging.getLogger(__name__)

Part = Literal["all", "gul", "fm"]
PARTS: Final[tuple[Part, ...]] = ("gul", "fm")
_STEP_MODULE: Final = "oasislmf.computation.generate.files"


class _GulDone(Exception):
    """Raised where the step turns to the IL items, to end the ``gul`` part there."""


def _quiet_oasislmf() -> None:
    """oasislmf's logging decorator formats every argument (whole DataFrames) when its
    logger's own level is unset, whatever the handlers keep: at 85,000 locations half a
    second of the step. Its messages at INFO and up are kept."""
    oasis_logger = logging.getLogger("oasislmf")
    if oasis_logger.level == logging.NOTSET:
        oasis_logger.setLevel(logging.INFO)


@contextlib.contextmanager
def _only(part: Part) -> Iterator[None]:
    """oasislmf's step reduced to one part's writers (module globals of the step, patched
    for the call: a worker process runs one task at a time)."""
    if part == "all":
        yield
        return
    import oasislmf.computation.generate.files as step

    if part == "gul":

        def stop(*args: Any, **kwargs: Any) -> Any:
            raise _GulDone

        with mock.patch.object(step, "get_il_input_items", stop):
            yield
        return
    real_mapping, real_write = step.get_summary_mapping, step.write_mapping_file

    def mapping(inputs_df: Any, oed_hierarchy: Any, is_fm_summary: bool = False) -> Any:
        return real_mapping(inputs_df, oed_hierarchy, is_fm_summary) if is_fm_summary else None

    def write_mapping(summary_mapping: Any, *args: Any, **kwargs: Any) -> Any:
        return None if summary_mapping is None else real_write(summary_mapping, *args, **kwargs)

    with mock.patch.multiple(
        step,
        write_exposure_summary=lambda *a, **k: None,
        write_summary_levels=lambda *a, **k: None,
        write_gul_input_files=lambda *a, **k: {},
        get_summary_mapping=mapping,
        write_mapping_file=write_mapping,
    ):
        yield


def write_input_files(
    *,
    options: RunOptions,
    keys_file: Path,
    errors_file: Path | None,
    input_dir: Path,
    part: Part = "all",
) -> None:
    """oasislmf's input files (GUL, and FM when there are accounts) from exposure and keys,
    written by its own step with the exposure loaded as ``oasislmf model run`` loads it;
    ``part`` writes only the GUL or the FM half (the module doc says how)."""
    from oasislmf.computation.generate.files import GenerateFiles
    from oasislmf.computation.run.model import RunModel
    from oasislmf.utils.data import get_exposure_data
    from oasislmf.utils.exceptions import OasisException

    _quiet_oasislmf()
    file_memo.memoize_oed_schema()
    args = options.arguments
    with staging_dir(Path(input_dir)) as tmp:
        kwargs = options.step_kwargs(
            oasis_files_dir=str(tmp),
            model_run_dir=None,
            keys_data_path=str(keys_file),
            keys_errors_path=str(errors_file) if errors_file else None,
        )
        try:
            kwargs["exposure_data"] = get_exposure_data(RunModel(**kwargs), add_internal_col=True)
            with _only(part):
                GenerateFiles(**kwargs).run()
        except _GulDone:
            pass
        except OasisException as exc:
            accounts = args.get("oed_accounts_csv")
            raise InputError(
                f"input files from {args.get('oed_location_csv')}"
                f"{' and ' + str(accounts) if accounts else ''}: {exc}"
            ) from exc
    logger.info("input files (%s) written to %s", part, input_dir)


def part_dir(input_dir: Path, part: Part) -> Path:
    """Where ``part`` of the input files is written before the merge."""
    return input_dir.with_name(f"{input_dir.name}.{part}")


def merge_parts(parts: Sequence[Path], input_dir: Path) -> None:
    """The parts' files as one directory ``input_dir`` (hard links, else copies), which
    appears whole; the parts are removed. Parts already merged (a re-run after the merge)
    leave ``input_dir`` as it is."""
    present = [p for p in parts if p.is_dir()]
    if not present:
        if input_dir.is_dir() and any(input_dir.iterdir()):
            return
        raise TransientError(f"input files {input_dir}: none of the parts {list(parts)} exist")
    if len(present) != len(parts):
        missing = sorted(str(p) for p in parts if not p.is_dir())
        raise TransientError(f"input files {input_dir}: parts {missing} are missing")
    with staging_dir(input_dir) as tmp:
        for part in parts:
            for root, _dirs, files in os.walk(part):
                rel = Path(root).relative_to(part)
                (tmp / rel).mkdir(parents=True, exist_ok=True)
                for name in files:
                    _place(Path(root) / name, tmp / rel / name)
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)


def _place(src: Path, target: Path) -> None:
    if target.exists():
        if target.stat().st_size != src.stat().st_size:
            raise RuntimeError(f"input file {target.name} differs between the GUL and FM parts")
        return
    try:
        os.link(src, target)
    except OSError:
        shutil.copy2(src, target)
