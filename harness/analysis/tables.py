"""The run records as pandas tables: one row per (finished run, budget) for the analysis, one row per refused
run for the report."""

from __future__ import annotations

import math
from pathlib import Path

from harness.runs.record import RunRecord
from harness.runs.rundir import RunDir

FIDELITY_COLUMNS = ("effect_correlation", "effect_carried")   # of the ported module, at budget 0; else NaN
COLUMNS = ("experiment", "family", "library", "pair", "origin", "receiving", "data", "condition", "budget",
           "seed", "origin_seed", "accuracy", "run_id") + FIDELITY_COLUMNS
NO_ORIGIN = -1   # origin_seed of a condition that uses no originating module
REFUSAL_COLUMNS = ("experiment", "family", "pair", "data", "condition", "seed", "reason", "run_id")


def _row(record: RunRecord, budget: str, accuracy: float) -> dict:
    s = record.spec
    fidelity = (record.result_info.fidelity or {}) if int(budget) == 0 else {}
    return {"experiment": s["experiment"], "family": s["family"]["name"], "library": s["family"]["library"],
            "pair": f"{s['origin']} -> {s['receiving']}", "origin": s["origin"], "receiving": s["receiving"],
            "data": f"{s['origin_data']} -> {s['receiving_data']}", "condition": s["condition"],
            "budget": int(budget), "seed": s["seed"], "origin_seed": _origin_seed(record),
            "accuracy": float(accuracy), "run_id": record.run_id,
            **{c: math.nan if fidelity.get(c) is None else float(fidelity[c]) for c in FIDELITY_COLUMNS}}


def _origin_seed(record: RunRecord) -> int:
    seed = (record.result_info.seeds or {}).get("origin")
    return NO_ORIGIN if seed is None else int(seed)


def load_table(run_dir: str | Path):
    """One row per (finished run, budget), columns COLUMNS: the coordinates of the run, its accuracy, and the
    ported module's function fidelity (FIDELITY_COLUMNS, on the budget-0 row of ported-like runs; NaN
    elsewhere). The host condition trains nothing and is evaluated once: it has one row, at budget 0 (the
    analysis compares it at every budget and says so). Refused and failed runs have no rows (see refusals)."""
    import pandas as pd

    rows = [_row(record, budget, m.accuracy)
            for record in RunDir(run_dir).records() if record.status == "ok"
            for budget, m in sorted(record.result_info.metrics.items(), key=lambda kv: int(kv[0]))]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({"budget": "int64", "seed": "int64", "origin_seed": "int64", "accuracy": "float64",
                         **{c: "float64" for c in FIDELITY_COLUMNS}})


def refusals(run_dir: str | Path):
    """One row per run whose port hubport refused: its coordinates and the one-line reason (for reports)."""
    import pandas as pd

    rows = []
    for record in RunDir(run_dir).records():
        if record.status != "refused":
            continue
        s = record.spec
        rows.append({"experiment": s["experiment"], "family": s["family"]["name"],
                     "pair": f"{s['origin']} -> {s['receiving']}",
                     "data": f"{s['origin_data']} -> {s['receiving_data']}", "condition": s["condition"],
                     "seed": s["seed"], "reason": record.result_info.reason, "run_id": record.run_id})
    return pd.DataFrame(rows, columns=list(REFUSAL_COLUMNS))
