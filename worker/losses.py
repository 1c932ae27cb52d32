"""Loss generation for one chunk, and the steps around it, on oasislmf's Python API.

The run directory (``RUN``) is prepared once (``generate_losses_dir``); chunk k of N is
oasislmf's partial run with process number k of max N, which writes ``RUN/k.work``; the
output step merges every ``k.work`` into ``RUN/work`` (oasislmf's output step reads only
``work``) and writes the ORD outputs.

Three choices keep chunks equal to the unchunked run: the stored analysis settings always
carry an explicit ``number_of_samples`` (otherwise chunks after the first run with 0); a
chunk marks ``k.work`` complete only when its pipeline succeeded, so the output step never
merges half a chunk; and the merge rebuilds each summary stream the output step reads as
the one stream the unchunked run would have written.

Why the last one: ``lecpy`` and ``aalpy`` read every ``*.bin`` of a summary folder and add
each event's loss into its period's total in float32; read chunk after chunk, a period's
events come in another order than in the unchunked run, and the sums differ in the last
digit (see :mod:`worker.summary_streams`). So each summary folder gets the one ``P1.bin``
(and ``P1.idx``) of the unchunked run; ``katpy``'s per-chunk inputs stay as they are.

How a chunk's pipeline runs is :mod:`worker.pipeline`'s business: in this process by
default (no per-chunk process start-up), or oasislmf's own bash script.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from oasis_keda.core import perspectives
from oasis_keda.core.model_dir import ModelDir
from oasis_keda.core.perspectives import PortfolioFiles
from worker import artefacts
from worker.errors import InputError, TransientError
from worker.run_options import load_run_options
from worker.staging import staging_dir

logger = logging.getLogger(__name__)

SETTINGS_NAME = "analysis_settings.json"
DEFAULT_SAMPLES = 10
COMPLETE_MARKER = ".chunk-complete"


def _model_settings(model: ModelDir) -> dict[str, Any]:
    try:
        data = json.loads(model.model_settings_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"model settings {model.model_settings_json} are unreadable: {exc}"
        ) from exc
    return data if isinstance(data, dict) else {}


def run_settings(model: ModelDir, analysis_settings: dict[str, Any]) -> dict[str, Any]:
    """The analysis settings as stored for the run: ``number_of_samples`` always explicit."""
    if not isinstance(analysis_settings, dict):
        raise InputError("analysis settings must be a JSON object")
    settings = dict(analysis_settings)
    samples = settings.get("number_of_samples")
    if samples is None:
        samples = _model_settings(model).get("model_default_samples", DEFAULT_SAMPLES)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
        raise InputError(
            f"analysis settings: number_of_samples must be an integer >= 0, got {samples!r}"
        )
    settings["number_of_samples"] = samples
    return settings


def step_kwargs(model: ModelDir, run_dir: Path, *, input_dir: Path | None = None) -> dict[str, Any]:
    """oasislmf's loss-step arguments for this run directory: the model's run options, as
    ``oasislmf model run`` loads them, with our paths."""
    options = load_run_options(
        model.config_path,
        overrides={
            "oasis_files_dir": str(input_dir or run_dir / "input"),
            "analysis_settings_json": str(run_dir / SETTINGS_NAME),
            "model_run_dir": str(run_dir),
            "oed_location_csv": "",
            "oed_accounts_csv": "",
            "oed_info_csv": "",
            "oed_scope_csv": "",
        },
    )
    return options.arguments


def _oasis_error(what: str, exc: Exception) -> Exception:
    from oasislmf.utils.exceptions import OasisException

    if isinstance(exc, OasisException):
        return InputError(f"{what}: {exc}")
    return TransientError(f"{what}: {type(exc).__name__}: {exc}")


def runnable_settings(
    settings: dict[str, Any], portfolio: PortfolioFiles, input_dir: Path
) -> tuple[dict[str, Any], list[str]]:
    """The settings without the perspectives whose input files are missing, each dropped
    with a warning in the log naming what is missing (oasislmf drops them the same way)."""
    names = sorted(p.name for p in Path(input_dir).iterdir())
    drops = perspectives.dropped(settings, portfolio, names)
    for drop in drops:
        logger.warning("%s", drop.warning)
    settings = perspectives.without(settings, drops)
    if perspectives.runs_nothing(settings):
        raise InputError("analysis settings: no perspective left to run (gul_output is off)")
    return settings, [drop.warning for drop in drops]


def prepare_losses_dir(
    *,
    model: ModelDir,
    input_dir: Path,
    analysis_settings: dict[str, Any],
    run_dir: Path,
    portfolio: PortfolioFiles | None = None,
) -> None:
    """Build ``run_dir`` (inputs converted to binary, model data linked, summaries).
    With ``portfolio``, perspectives that cannot run are dropped first."""
    from oasislmf.manager import OasisManager

    from worker import loss_prepare

    loss_prepare.install()
    run_dir = Path(run_dir)
    settings = run_settings(model, analysis_settings)
    warnings: list[str] = []
    if portfolio is not None:
        settings, warnings = runnable_settings(settings, portfolio, Path(input_dir))
    with staging_dir(run_dir) as tmp:
        (tmp / SETTINGS_NAME).write_text(json.dumps(settings, indent=2), encoding="utf-8")
        kwargs = step_kwargs(model, tmp, input_dir=Path(input_dir))
        try:
            OasisManager().generate_losses_dir(**kwargs)
        except Exception as exc:
            raise _oasis_error(f"preparing the loss run in {run_dir}", exc) from exc
        _relative_inner_links(tmp)
        artefacts.write_warnings(tmp, warnings)
    logger.info("loss run directory ready: %s", run_dir)


def _relative_inner_links(root: Path) -> None:
    """Rewrite absolute links that point inside ``root`` as relative ones.

    The run directory is built under a temporary name and renamed into place. oasislmf
    links a chosen model file set inside it with absolute paths (``static/footprint.bin``
    to ``<run dir>/static/footprint_<set>.bin``, and likewise for vulnerability, loss
    factor and hazard case sets): after the rename those would point nowhere.
    """
    base = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            link = os.path.join(dirpath, name)
            if not os.path.islink(link):
                continue
            target = os.readlink(link)
            if os.path.isabs(target) and os.path.commonpath([base, target]) == base:
                os.unlink(link)
                os.symlink(os.path.relpath(target, dirpath), link)


def _chunk_dir(run_dir: Path, chunk_index: int) -> Path:
    return run_dir / f"{chunk_index}.work"


def run_loss_chunk(*, model: ModelDir, run_dir: Path, chunk_index: int, num_chunks: int) -> None:
    """Run chunk k of N: oasislmf's partial run, writing ``run_dir/k.work``."""
    from worker import pipeline

    run_dir = Path(run_dir)
    if not 1 <= chunk_index <= num_chunks:
        raise ValueError(f"chunk {chunk_index} of {num_chunks} is out of range")
    if not (run_dir / SETTINGS_NAME).is_file():
        raise InputError(f"{run_dir} is not a prepared loss run (no {SETTINGS_NAME})")
    work = _chunk_dir(run_dir, chunk_index)
    (work / COMPLETE_MARKER).unlink(missing_ok=True)
    try:
        pipeline.run_partial(
            step_kwargs(model, run_dir), process_number=chunk_index, max_process_id=num_chunks
        )
    except (InputError, TransientError):
        raise
    except Exception as exc:
        raise _oasis_error(f"loss chunk {chunk_index} of {num_chunks} in {run_dir}", exc) from exc
    work.mkdir(exist_ok=True)
    (work / COMPLETE_MARKER).write_text("", encoding="utf-8")
    logger.info("loss chunk %d of %d done in %s", chunk_index, num_chunks, run_dir)


def _link(src: Path, target: Path) -> None:
    try:
        os.link(src, target)
    except OSError:
        shutil.copy2(src, target)


def _link_chunk_files(run_dir: Path, num_chunks: int, work: Path) -> dict[Path, list[Path]]:
    """Link every chunk file into ``work`` but the summary streams, returned per folder."""
    streams: dict[Path, list[Path]] = {}
    for k in range(1, num_chunks + 1):
        src = _chunk_dir(run_dir, k)
        for root, _dirs, files in os.walk(src):
            rel = Path(root).relative_to(src)
            dest = work / rel
            dest.mkdir(parents=True, exist_ok=True)
            for name in files:
                if name == COMPLETE_MARKER:
                    continue
                if num_chunks > 1 and rel != Path(".") and name in (f"P{k}.bin", f"P{k}.idx"):
                    if name.endswith(".bin"):  # its .idx goes with it
                        streams.setdefault(rel, []).append(Path(root) / name)
                    continue
                target = dest / name
                if target.exists():
                    raise TransientError(f"{run_dir}: {target} written by two chunks")
                _link(Path(root) / name, target)
    return streams


def merge_chunk_work(run_dir: Path, num_chunks: int, *, shuffle_rule: int | None = None) -> None:
    """Rebuild ``run_dir/work`` from every complete ``k.work``, as one chunk would have it.

    Each summary folder's ``P{k}.bin`` (and ``.idx``) streams become the one ``P1.bin`` (and
    ``P1.idx``) of the unchunked run; every other file is hard-linked (else copied).
    ``shuffle_rule`` is oasislmf's ``kernel_event_shuffle`` (None: its default).
    """
    missing = [
        k
        for k in range(1, num_chunks + 1)
        if not (_chunk_dir(run_dir, k) / COMPLETE_MARKER).exists()
    ]
    if missing:
        raise TransientError(f"{run_dir}: loss chunks {missing} of {num_chunks} are not complete")
    work = run_dir / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    streams = _link_chunk_files(run_dir, num_chunks, work)
    if not streams:
        return
    from worker import summary_streams

    events_file = run_dir / "input" / "events.bin"
    for rel, sources in streams.items():
        try:
            merged = summary_streams.merge(
                sources, work / rel / "P1.bin", events_file, shuffle_rule
            )
        except summary_streams.StreamError as exc:
            raise TransientError(f"{run_dir}: merging {rel}: {exc}") from exc
        except summary_streams.EventsError as exc:
            raise InputError(f"{run_dir}: merging {rel}: {exc}") from exc
        if merged:
            continue
        for src in sources:  # not summary streams: as the chunks wrote them
            for path in (src, src.with_suffix(".idx")):
                if path.exists():
                    _link(path, work / rel / path.name)


def _shuffle_rule(kwargs: dict[str, Any]) -> int:
    """oasislmf's ``kernel_event_shuffle`` for these step arguments (its default if unset)."""
    from oasislmf.utils.defaults import EVE_DEFAULT_SHUFFLE

    rule = kwargs.get("kernel_event_shuffle")
    try:
        return EVE_DEFAULT_SHUFFLE if rule is None else int(rule)
    except (TypeError, ValueError) as exc:
        raise InputError(f"kernel_event_shuffle must be an integer, got {rule!r}") from exc


def generate_losses_output(
    *, model: ModelDir, run_dir: Path, num_chunks: int, output_dir: Path
) -> None:
    """Merge chunk work and write the ORD outputs; copy ``run_dir/output`` to ``output_dir``."""
    from worker import pipeline

    run_dir = Path(run_dir)
    kwargs = step_kwargs(model, run_dir)
    merge_chunk_work(run_dir, num_chunks, shuffle_rule=_shuffle_rule(kwargs))
    try:
        pipeline.run_outputs(kwargs, max_process_id=num_chunks)
    except (InputError, TransientError):
        raise
    except Exception as exc:
        raise _oasis_error(f"loss outputs of {run_dir}", exc) from exc
    with staging_dir(Path(output_dir)) as tmp:
        shutil.copytree(run_dir / "output", tmp, dirs_exist_ok=True)
    logger.info("loss outputs of %s (%d chunks) in %s", run_dir, num_chunks, output_dir)
