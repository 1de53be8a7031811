"""Per-example results: one sidecar file per run, runs/<run_id>.examples.npz, beside its JSON record.

One row per example per budget (columns budget, id, gold, prediction, margin; id is the example's index in the
evaluation split, which the record's pairing.eval_set digest pins), so that example-level statistics (McNemar,
bootstraps over examples) never need the data folder again. The worker writes it atomically before its record
exists, so a record that names a sidecar always has a whole one; records made before this file existed name
none, and the analysis then says which runs lack example-level evidence.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from harness.errors import StatsError
from harness.runs.io import fsync_dir, read_json

COLUMNS = ("budget", "id", "gold", "prediction", "margin")
SUFFIX = ".examples.npz"


def write_examples(runs_dir: Path, run_id: str, gold, per_budget: dict[int, tuple]) -> dict:
    """Write runs_dir/<run_id>.examples.npz from {budget: (predictions, margins)}; returns the record's field."""
    gold = np.asarray(gold, dtype=np.int64)
    n, budgets = gold.size, sorted(per_budget)
    columns = {"budget": np.repeat(np.asarray(budgets, dtype=np.int64), n),
               "id": np.tile(np.arange(n, dtype=np.int64), len(budgets)), "gold": np.tile(gold, len(budgets)),
               "prediction": np.concatenate([np.asarray(per_budget[b][0], dtype=np.int64) for b in budgets]),
               "margin": np.concatenate([np.asarray(per_budget[b][1], dtype=np.float32) for b in budgets])}
    if any(col.size != n * len(budgets) for col in columns.values()):
        raise StatsError(f"per-example results of {run_id} do not have {n} rows per budget")
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{run_id}{SUFFIX}"
    tmp = runs_dir / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **columns)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(runs_dir)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": n * len(budgets)}


def read_examples(path: Path) -> dict[str, np.ndarray]:
    """The columns of one sidecar file (COLUMNS, equal lengths)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            columns = {name: data[name] for name in COLUMNS}
    except (OSError, KeyError, ValueError) as exc:
        raise StatsError(f"per-example file {path} is unreadable ({type(exc).__name__})",
                         "delete it and its record, then rerun the grid to redo that run") from None
    if len({col.size for col in columns.values()}) != 1:
        raise StatsError(f"per-example file {path} has columns of different lengths", "rerun that run")
    return columns


def correct_by_budget(columns: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """{budget: bool array of right answers ordered by example id}."""
    out = {}
    for budget in np.unique(columns["budget"]):
        rows = columns["budget"] == budget
        order = np.argsort(columns["id"][rows], kind="stable")
        out[int(budget)] = (columns["prediction"][rows] == columns["gold"][rows])[order]
    return out


def load_examples(run_dir: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """{run_id: {budget: correct[n]}} for every finished run with a sidecar (older records have none)."""
    runs, out = Path(run_dir) / "runs", {}
    for path in sorted(runs.glob("*.json")):
        record = read_json(path)
        if not record or record.get("status") != "ok" or not record.get("examples"):
            continue
        side = runs / record["examples"]["file"]
        if not side.is_file():
            raise StatsError(f"{path.name} names the per-example file {side.name}, which is missing",
                             f"delete runs/{path.name} and rerun the grid with the same --out to redo that run")
        out[record["run_id"]] = correct_by_budget(read_examples(side))
    return out
