"""The bodies of the inputs and losses stages' steps: each calls the oasislmf work of
:mod:`worker.lookup` or :mod:`worker.losses` with the paths of its
:class:`~oasis_keda.core.stages.Job`. The task convention (arguments, records, retries) is
:mod:`worker.tasks`'s.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oasis_keda.core import perspectives
from oasis_keda.core.model_dir import ModelDir, read_model_dir
from oasis_keda.core.perspectives import PortfolioFiles
from oasis_keda.core.stages import Job
from worker.errors import InputError
from worker.input_files import Part
from worker.run_options import RunOptions

logger = logging.getLogger(__name__)


# -- stage bodies ------------------------------------------------------------------------


def _model(job: Job) -> ModelDir:
    if not job["model_dir"]:
        raise InputError(f"model {job['model_id']!r} has no model directory registered")
    return read_model_dir(job["model_dir"])


def _settings(job: Job) -> dict[str, Any]:
    if not job["settings_file"]:
        return {}
    path = Path(job["settings_file"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"analysis settings {path} are unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"analysis settings {path} must hold a JSON object")
    return data


def _run(job: Job, part: str) -> Path:
    path = Path(job["run_root"]) / part
    path.mkdir(parents=True, exist_ok=True)
    return path


def _generate_options(job: Job) -> RunOptions:
    from worker.lookup import generate_options

    if not job["location_file"]:
        raise InputError("the portfolio has no location file")
    if not job["settings_file"]:
        raise InputError("the analysis has no settings file")
    return generate_options(
        _model(job),
        location_file=Path(job["location_file"]),
        accounts_file=_path(job["accounts_file"]),
        settings_file=Path(job["settings_file"]),
        ri_info_file=_path(job.get("ri_info_file")),
        ri_scope_file=_path(job.get("ri_scope_file")),
        currency_conversion_json=_path(job.get("currency_conversion_json")),
        reporting_currency=job.get("reporting_currency"),
    )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def prepare_input_generation_params(job: Job, subtask_id: int) -> None:
    """Check the settings and run options, and make the run's folders. The location file
    was counted and checked by the dispatch that planned the chunks."""
    from worker.run_options import check_run_options

    _settings(job)
    check_run_options(_generate_options(job))
    logger.info("location file %s: %d lookup chunks", job["location_file"], job["num_chunks"])
    _run(job, "lookup")


def prepare_keys_file(job: Job, subtask_id: int, chunk_index: int) -> str:
    from worker.lookup import prepare_keys_chunk

    assert job["location_file"]
    path = prepare_keys_chunk(
        model=_model(job),
        options=_generate_options(job),
        location_file=Path(job["location_file"]),
        chunk_index=chunk_index,
        num_chunks=job["num_chunks"],
        out_dir=_run(job, "lookup/chunks"),
    )
    return str(path)


def collect_keys(chunk_outputs: list[str], job: Job, subtask_id: int) -> str:
    from worker.lookup import collect_keys as _collect

    assert job["location_file"]
    keys, _errors = _collect(
        options=_generate_options(job),
        location_file=Path(job["location_file"]),
        chunk_outputs=[Path(p) for p in chunk_outputs],
        out_dir=_run(job, "lookup"),
    )
    return str(keys)


def _write_part(part: Part, keys_file: str, job: Job) -> str:
    from worker.input_files import part_dir
    from worker.input_files import write_input_files as _write
    from worker.lookup import keys_names

    options = _generate_options(job)
    errors = Path(keys_file).with_name(keys_names(options)[1])
    target = part_dir(Path(job["run_root"]) / "inputs", part)
    _write(
        options=options,
        keys_file=Path(keys_file),
        errors_file=errors if errors.exists() else None,
        input_dir=target,
        part=part,
    )
    return str(target)


def write_input_files(keys_file: str, job: Job, subtask_id: int) -> str:
    """oasislmf's GUL input files (all of them without accounts), beside the FM ones."""
    for drop in perspectives.dropped(_settings(job), _portfolio(job)):
        logger.warning("%s (no input files are written for it)", drop.warning)
    return _write_part("gul", keys_file, job)


def write_fm_input_files(keys_file: str, job: Job, subtask_id: int) -> str:
    """oasislmf's FM (and reinsurance) input files, beside the GUL ones; none without
    accounts (an empty result). Also the keys files' CSV copies the analysis serves."""
    from worker import artefacts
    from worker.lookup import keys_names

    keys = Path(keys_file)
    artefacts.keys_as_csv(keys, keys.with_name(keys_names(_generate_options(job))[1]))
    if not job["accounts_file"]:
        logger.info("no accounts: no FM input files")
        return ""
    return _write_part("fm", keys_file, job)


def cleanup_input_generation(parts: list[str], job: Job, subtask_id: int) -> dict[str, str]:
    """The parts of the input files merged into ``inputs`` (the analysis is READY with
    it); its archive is made when it is downloaded (docs/API.md)."""
    from worker import artefacts
    from worker.input_files import merge_parts
    from worker.lookup import keys_names

    root = Path(job["run_root"])
    inputs = root / "inputs"
    merge_parts([Path(p) for p in parts if p], inputs)
    shutil.rmtree(root / "lookup" / "chunks", ignore_errors=True)
    keys_name, errors_name = keys_names(_generate_options(job))
    return {
        "input_file_id": str(inputs),
        **artefacts.input_files(root / "lookup" / keys_name, root / "lookup" / errors_name, inputs),
    }


def prepare_losses_generation_directory(job: Job, subtask_id: int) -> None:
    from worker.losses import prepare_losses_dir

    if not job["input_dir"] or not Path(job["input_dir"]).is_dir():
        raise InputError(f"input files {job['input_dir']} are missing: generate inputs first")
    prepare_losses_dir(
        model=_model(job),
        input_dir=Path(job["input_dir"]),
        analysis_settings=_settings(job),
        run_dir=_run(job, "losses"),
        portfolio=_portfolio(job),
    )


def _portfolio(job: Job) -> PortfolioFiles:
    return PortfolioFiles(
        accounts=bool(job["accounts_file"]),
        ri_info=bool(job.get("ri_info_file")),
        ri_scope=bool(job.get("ri_scope_file")),
    )


def generate_losses_chunk(job: Job, subtask_id: int, chunk_index: int) -> str:
    from worker.losses import run_loss_chunk

    run_dir = _run(job, "losses")
    run_loss_chunk(
        model=_model(job), run_dir=run_dir, chunk_index=chunk_index, num_chunks=job["num_chunks"]
    )
    return f"{run_dir}#{chunk_index}"


def generate_losses_output(chunks: list[str], job: Job, subtask_id: int) -> str:
    from worker.losses import generate_losses_output as _output

    output_dir = _run(job, "outputs")
    _output(
        model=_model(job),
        run_dir=_run(job, "losses"),
        num_chunks=job["num_chunks"],
        output_dir=output_dir,
    )
    return str(output_dir)


def cleanup_losses_generation(output_dir: str, job: Job, subtask_id: int) -> dict[str, str]:
    from worker import artefacts

    root = Path(job["run_root"])
    run_log = artefacts.run_log(root / "losses", root / "run_log.txt")
    return {"output_file_id": str(Path(output_dir)), "run_log_file_id": str(run_log)}


#: Step bodies by step slug: every stage's steps must have one when the app is made.
BODIES: dict[str, Callable[..., Any]] = {
    fn.__name__.replace("_", "-"): fn
    for fn in (
        prepare_input_generation_params,
        prepare_keys_file,
        collect_keys,
        write_input_files,
        write_fm_input_files,
        cleanup_input_generation,
        prepare_losses_generation_directory,
        generate_losses_chunk,
        generate_losses_output,
        cleanup_losses_generation,
    )
}
