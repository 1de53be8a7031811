"""Run records: one sorted-JSON file per run, written atomically, so that a grid can be killed at any moment
and resumed with no record lost, half-written or duplicated.

Layout of a run directory:
    manifest.json        the validated grid, versions, git commit and command (one grid per directory)
    runs/<run_id>.json   finished runs (status "ok"), metrics for every budget; or runs whose port hubport
                         refused (status "refused", with the reason): a result, not retried, not in load_table
    failed/<run_id>.json failed runs with their error; retried only with --retry-failed
    origin/<hash>/       originating modules, cached by content (see harness.run)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from hubport.errors import ConfigError, HubportError

PACKAGES = ("torch", "transformers", "peft", "adapters", "accelerate", "datasets", "hubport")
FIDELITY_COLUMNS = ("effect_correlation", "effect_carried")   # of the ported module, at budget 0; else NaN
COLUMNS = ("experiment", "family", "library", "pair", "origin", "receiving", "data", "condition", "budget",
           "seed", "origin_seed", "accuracy", "run_id") + FIDELITY_COLUMNS
NO_ORIGIN = -1   # origin_seed of a condition that uses no originating module
FINISHED = ("ok", "refused")   # statuses of a run that is done (a rerun skips it)


def write_json(path: Path, data: dict) -> None:
    """tmp file, fsync, os.replace, fsync of the folder: readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(_finite(data), fh, sort_keys=True, indent=1, default=str, allow_nan=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _finite(value):
    """NaN/inf (e.g. the loss of a budget with no training) become null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The file's data, or None when it is missing or unreadable (a record is either whole or absent)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def versions() -> dict[str, str | None]:
    """Installed versions of the stack, read from package metadata (no imports)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("hubport") is None:  # a checkout on PYTHONPATH, not installed: the package knows its version
        from hubport import __version__

        out["hubport"] = __version__
    return out


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, '+dirty' with local changes; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    """Bookkeeping of one run directory: which runs are done, which failed, and where records go."""

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

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One driver per directory (an OS lock: released even when the driver is killed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HubportError(f"another harness run is using {self.root}",
                                   "wait for it to finish or choose another --out") from None
            yield

    def done(self, run_id: str, budgets: tuple[int, ...]) -> bool:
        """A finished record covering every requested budget (a record with fewer budgets is redone)."""
        record = read_json(self.runs / f"{run_id}.json")
        if not record or record.get("status") not in FINISHED:
            return False
        return set(budgets) <= {int(b) for b in record.get("spec", {}).get("budgets", [])}

    def has_failed(self, run_id: str) -> bool:
        return (self.failed / f"{run_id}.json").exists()

    def write(self, record: dict) -> None:
        """Store a finished (ok or refused) or failed record; a finished one clears an earlier failure."""
        run_id = record["run_id"]
        if record["status"] in FINISHED:
            write_json(self.runs / f"{run_id}.json", record)
            (self.failed / f"{run_id}.json").unlink(missing_ok=True)
        else:
            write_json(self.failed / f"{run_id}.json", record)


def _row(record: dict, budget: str, m: dict) -> dict:
    s = record["spec"]
    fidelity = (record.get("fidelity") or {}) if int(budget) == 0 else {}
    return {"experiment": s["experiment"], "family": s["family"]["name"], "library": s["family"]["library"],
            "pair": f"{s['origin']} -> {s['receiving']}", "origin": s["origin"], "receiving": s["receiving"],
            "data": f"{s['origin_data']} -> {s['receiving_data']}", "condition": s["condition"],
            "budget": int(budget), "seed": s["seed"], "origin_seed": _origin_seed(record),
            "accuracy": float(m["accuracy"]),
            "run_id": record["run_id"],
            **{c: math.nan if fidelity.get(c) is None else float(fidelity[c]) for c in FIDELITY_COLUMNS}}


def _origin_seed(record: dict) -> int:
    seed = (record.get("seeds") or {}).get("origin")
    return NO_ORIGIN if seed is None else int(seed)


def load_table(run_dir: str | Path):
    """One row per (finished run, budget), columns as in INTERFACES.md plus the ported module's function
    fidelity (FIDELITY_COLUMNS, on the budget-0 row of ported-like runs; NaN elsewhere). The host
    condition trains nothing and is evaluated once: it has one row, at budget 0 (the analysis compares it at
    every budget and says so). Refused and failed runs have no rows (see refusals)."""
    import pandas as pd

    rows = []
    for path in sorted((Path(run_dir) / "runs").glob("*.json")):
        record = read_json(path)
        if not record or record.get("status") != "ok":
            continue
        for budget, m in sorted(record["metrics"].items(), key=lambda kv: int(kv[0])):
            rows.append(_row(record, budget, m))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({"budget": "int64", "seed": "int64", "origin_seed": "int64", "accuracy": "float64",
                         **{c: "float64" for c in FIDELITY_COLUMNS}})


def refusals(run_dir: str | Path):
    """One row per run whose port hubport refused: its coordinates and the one-line reason (for reports)."""
    import pandas as pd

    rows = []
    for path in sorted((Path(run_dir) / "runs").glob("*.json")):
        record = read_json(path)
        if not record or record.get("status") != "refused":
            continue
        s = record["spec"]
        rows.append({"experiment": s["experiment"], "family": s["family"]["name"],
                     "pair": f"{s['origin']} -> {s['receiving']}",
                     "data": f"{s['origin_data']} -> {s['receiving_data']}", "condition": s["condition"],
                     "seed": s["seed"], "reason": record["reason"], "run_id": record["run_id"]})
    return pd.DataFrame(rows, columns=["experiment", "family", "pair", "data", "condition", "seed", "reason",
                                       "run_id"])
