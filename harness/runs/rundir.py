"""Bookkeeping of one run directory, so that a grid can be killed at any moment and resumed with no record
lost, half-written or duplicated.

Layout of a run directory:
    manifest.json        the validated grid, versions, git commit and command (one grid per directory)
    runs/<run_id>.json   finished runs (status "ok"), metrics for every budget; or runs whose port hubport
                         refused (status "refused", with the reason): a result, not retried, not in load_table
    failed/<run_id>.json failed runs with their error; retried only with --retry-failed
    origin/<hash>/       originating modules, cached by content (see harness.runs.run)
    ported/<hash>/       ports of them, cached by module, host and method (see harness.runs.porting)
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from harness.errors import BusyError, ConfigError
from harness.runs.identity import git_commit, versions
from harness.runs.io import read_json, write_json
from harness.runs.record import RunRecord
from hubport.errors import OutputError


class RunDir:
    """Which runs of one run directory are done, which failed, and where records go."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs, self.failed, self.origin = self.root / "runs", self.root / "failed", self.root / "origin"
        self.caches = (self.origin, self.root / "ported", self.root / "identity")

    def prepare(self, config: dict, command: str) -> None:
        """Create the folders, clean files left by killed writers, and write (or check) the manifest."""
        for folder in (self.runs, self.failed, *self.caches):
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob(".*.tmp-*"):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        manifest = self.root / "manifest.json"
        old = read_json(manifest)
        if old is not None and old.get("config") != config:
            raise ConfigError(f"{self.root} holds runs of a different grid",
                              "use another --out, or restore the grid file the runs were made with")
        if old is None:
            write_json(manifest, {"config": config, "versions": versions(), "git_commit": git_commit(),
                                  "command": command})

    def check_root(self) -> None:
        """Refuse, before any work, a root that is a file or lies below one."""
        for path in (self.root, *self.root.absolute().parents):
            if path.exists():
                if not path.is_dir():
                    raise OutputError(f"--out {self.root} cannot be a run directory: {path} is a file")
                return

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One driver per directory (an OS lock: released even when the driver is killed)."""
        self.check_root()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the run directory {self.root}: {exc.strerror or exc}") from None
        try:
            with FileLock(self.root / ".lock", timeout=0):
                yield
        except Timeout:
            raise BusyError(f"another harness run is using {self.root}") from None

    def record(self, run_id: str) -> RunRecord | None:
        """The finished record of run_id, if there is one."""
        return RunRecord.load(self.runs / f"{run_id}.json")

    def done(self, run_id: str, budgets: tuple[int, ...]) -> bool:
        """A finished record covering every requested budget (a record with fewer budgets is redone)."""
        record = self.record(run_id)
        return record is not None and record.finished and set(budgets) <= record.budgets()

    def has_failed(self, run_id: str) -> bool:
        return (self.failed / f"{run_id}.json").exists()

    def write(self, record: RunRecord) -> None:
        """Store a finished (ok or refused) or failed record; a finished one clears an earlier failure."""
        if record.finished:
            write_json(self.runs / f"{record.run_id}.json", record.to_dict())
            (self.failed / f"{record.run_id}.json").unlink(missing_ok=True)
        else:
            write_json(self.failed / f"{record.run_id}.json", record.to_dict())

    def records(self) -> Iterator[RunRecord]:
        """Every finished record, in file-name order."""
        for path in sorted(self.runs.glob("*.json")):
            record = RunRecord.load(path)
            if record is not None:
                yield record
