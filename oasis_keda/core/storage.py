"""Layout of the storage directory shared by the CLI, the API, the controller and the workers.

One tree (a shared volume in Kubernetes, a local folder on one machine)::

    <storage>/uploads/<uuid>/<filename>                      files given by users
    <storage>/analyses/<id>/runs/<run_number>/lookup/       keys chunks and merged keys
    <storage>/analyses/<id>/runs/<run_number>/inputs/       Oasis input files
    <storage>/analyses/<id>/runs/<run_number>/losses/       the loss run directory
    <storage>/analyses/<id>/runs/<run_number>/outputs/      ORD outputs

Every generate or run gets a new run number, so a new run never overwrites the files of a
previous one (they stay readable, as their sub-task records do). Paths stored in the records
database are relative to the storage root, so the root may be mounted elsewhere.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

UPLOADS = "uploads"
ANALYSES = "analyses"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunDirs:
    """The directories of one analysis run (generate or run request)."""

    root: Path
    lookup: Path
    inputs: Path
    losses: Path
    outputs: Path

    def create(self) -> RunDirs:
        for path in (self.lookup, self.inputs, self.losses, self.outputs):
            path.mkdir(parents=True, exist_ok=True)
        return self


@dataclasses.dataclass(frozen=True)
class Storage:
    """The storage directory."""

    root: Path

    def abspath(self, relative: str | Path) -> Path:
        return self.root / relative

    def relpath(self, path: Path) -> str:
        return str(path.resolve().relative_to(self.root.resolve()))

    def analysis_dir(self, analysis_id: int) -> Path:
        return self.root / ANALYSES / str(analysis_id)

    def run_dirs(self, analysis_id: int, run_number: int) -> RunDirs:
        root = self.analysis_dir(analysis_id) / "runs" / str(run_number)
        return RunDirs(
            root=root,
            lookup=root / "lookup",
            inputs=root / "inputs",
            losses=root / "losses",
            outputs=root / "outputs",
        )

    def store_upload(self, source: Path, *, filename: str | None = None) -> tuple[str, int]:
        """Copy a user's file in; return (path relative to the root, size in bytes).

        The copy lands under a temporary name and is renamed into place, so a reader never
        sees half a file.
        """
        name = filename or source.name
        target_dir = self.root / UPLOADS / uuid.uuid4().hex
        target_dir.mkdir(parents=True, exist_ok=False)
        target = target_dir / name
        partial = target_dir / f".{name}.partial"
        shutil.copyfile(source, partial)
        partial.replace(target)
        return self.relpath(target), target.stat().st_size
