"""The grid analysis: validate the run table, run every cell, correct across the whole grid, write the files.

A cell is one (experiment, family, library, host pair, data combination, budget); within it every condition
is scored once per seed (and per originating module), and conditions are compared paired by seed
(harness/analysis/cells.py; numbers from harness/analysis/stats.py and, over examples, harness/analysis/resample.py). This module checks
the table, corrects each family (harness/analysis/families.py), words the verdicts (harness/analysis/verdicts.py) and writes
analysis.json / analysis.csv. docs/statistics.md explains every choice.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.analysis.cells import (
    add_power,
    cell_omnibus,
    compare_cells,
    default_pairs,
    family_omnibus,
    summarize_conditions,
)
from harness.analysis.families import aggregates, correct_families, primary_evidence, replicability
from harness.analysis.results import (
    BUDGET_FREE,
    CELL,
    REQUIRED,
    Analysis,
    AnalysisOptions,
    CellKey,
    CellOmnibus,
    Comparison,
    ConditionSummary,
    FamilyOmnibus,
    condition_order,
)
from harness.analysis.tables import NO_ORIGIN
from harness.analysis.verdicts import design_warnings, verdict
from harness.errors import StatsError
from harness.runs.io import write_json, write_text
from hubport.errors import FormatError

__all__ = ["Analysis", "AnalysisOptions", "CellKey", "CellOmnibus", "Comparison", "ConditionSummary",
           "FamilyOmnibus", "analyze_dir", "analyze_table", "condition_order", "default_pairs", "load_analysis",
           "write_analysis"]


def check_table(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Validate the tidy run table and return the columns used, with clean dtypes."""
    missing = [c for c in (*REQUIRED, metric) if c not in table.columns]
    if missing:
        raise StatsError(f"run table lacks column(s) {', '.join(missing)}", "pass harness.analysis.tables.load_table output")
    table = table.assign(origin_seed=table.get("origin_seed", NO_ORIGIN), run_id=table.get("run_id", ""))
    t = table.loc[:, [*REQUIRED, "origin_seed", "run_id", metric]].copy()
    t[metric] = pd.to_numeric(t[metric], errors="coerce")
    if t[metric].isna().any() or not t[metric].between(0, 1).all():
        raise StatsError(f"column '{metric}' must hold numbers in [0, 1] (a fraction; reports show points)")
    for col in ("experiment", "family", "library", "pair", "data", "condition"):
        t[col] = t[col].astype(str)
    t["budget"], t["seed"], t["origin_seed"] = (t[c].astype(int) for c in ("budget", "seed", "origin_seed"))
    t["run_id"] = t["run_id"].astype(str)
    dup = t.duplicated([*REQUIRED, "origin_seed"])
    if dup.any():
        row = t[dup].iloc[0]
        raise StatsError(f"{int(dup.sum())} duplicate run rows, e.g. {row['condition']} seed {row['seed']} in "
                         f"{row['family']} budget {row['budget']}", "keep one row per run and budget")
    return t


def spread_budget_free(t: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Copy a host-only score recorded at one budget to every budget of its group, and say so."""
    group_cols, copied, extra = list(CELL[:-1]), {}, []
    for _, group in t.groupby(group_cols, sort=True):
        budgets = set(group["budget"])
        for cond in BUDGET_FREE:
            rows = group[group["condition"] == cond]
            recorded = set(rows["budget"])
            if len(recorded) != 1 or budgets == recorded:
                continue
            (b0,) = recorded
            for b in sorted(budgets - recorded):
                extra.append(rows.assign(budget=b, _from=b0))
            copied[(cond, b0)] = copied.get((cond, b0), 0) + 1
    notes = [f"'{cond}' was recorded at budget {b0} only (in {n} family/pair/data group{'s' * (n > 1)}): it is "
             "compared with that same score at every budget" for (cond, b0), n in sorted(copied.items())]
    if not extra:
        return t.assign(_from=np.nan), notes
    return pd.concat([t.assign(_from=np.nan), *extra], ignore_index=True), notes


def _corrected(items: list, method: str = "fdr_bh") -> list:
    p = stats.correct(np.array([x.result.p for x in items], dtype=float), method) if items else []
    return [dataclasses.replace(x, p_corr=float(q)) for x, q in zip(items, p)]


def analyze_table(table: pd.DataFrame, options: AnalysisOptions | None = None,
                  examples: dict | None = None) -> Analysis:
    """Analyse a tidy run table (see harness.analysis.tables.load_table) into a frozen Analysis; examples, from
    harness.runs.examples.load_examples, adds the example-level evidence (None: seed level only)."""
    options = options or AnalysisOptions()
    t, notes = spread_budget_free(check_table(table, options.metric))
    summaries, runs, gaps = summarize_conditions(t, options)
    comps, diffs, skipped = compare_cells(summaries, runs, examples, options)
    if not comps:
        raise StatsError("no comparison has both conditions on >= 3 common seeds",
                         "check the conditions and seeds in the run table")
    comps, sizes = correct_families([primary_evidence(c) for c in comps], options)
    comps = add_power(comps, options, sizes)
    comps = [dataclasses.replace(c, verdict=verdict(c, options, sizes.get(c.family, 0))) for c in comps]
    omni = _corrected(cell_omnibus(summaries, options))
    fam = _corrected(family_omnibus(comps, diffs, options))
    warn = notes + gaps + skipped + design_warnings(comps, options, sizes, examples is not None)
    return Analysis(options, tuple(summaries), tuple(comps), tuple(omni), tuple(fam), tuple(warn), _versions(),
                    tuple(aggregates(summaries, comps, options)), tuple(replicability(comps, options)))


def _versions() -> tuple[tuple[str, str], ...]:
    import importlib.metadata as md

    return tuple((name, md.version(name)) for name in ("numpy", "pandas", "pingouin", "scipy"))


def analyze_dir(run_dir: Path, options: AnalysisOptions | None = None) -> Analysis:
    """Analyse a run folder's records (and per-example files) and write analysis.json and analysis.csv; the
    primary family is the grid file's analysis.primary when the manifest declares one."""
    from harness.analysis.tables import load_table
    from harness.runs.examples import load_examples
    from harness.runs.io import read_json

    run_dir = Path(run_dir)
    options = options or AnalysisOptions()
    declared = ((read_json(run_dir / "manifest.json") or {}).get("config") or {}).get("analysis", {}).get("primary")
    if declared and options.primary == AnalysisOptions().primary:
        options = dataclasses.replace(options, primary=tuple(tuple(x.split(" - ", 1)) for x in declared))
    analysis = analyze_table(load_table(run_dir), options, load_examples(run_dir))
    write_analysis(run_dir, analysis)
    return analysis


def write_analysis(run_dir: Path, analysis: Analysis) -> None:
    """analysis.json (sorted keys) and analysis.csv (one row per comparison), each written atomically."""

    run_dir = Path(run_dir)
    write_json(run_dir / "analysis.json", analysis.to_dict())
    write_text(run_dir / "analysis.csv", analysis.comparisons_frame().to_csv(index=False))


def load_analysis(run_dir: Path) -> Analysis:
    """Read run_dir/analysis.json back."""
    path = Path(run_dir) / "analysis.json"
    if not path.is_file():
        raise StatsError(f"no analysis at {path}", "run `harness analyze DIR` first")
    hint = "run `harness analyze DIR` again to rewrite it"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise FormatError(f"{path} is not valid JSON (empty or corrupted)", hint) from None
    if not isinstance(data, dict):
        raise FormatError(f"{path} is not a JSON object", hint)
    try:
        return Analysis.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        what = f"{type(exc).__name__}: {str(exc)[:60]}"
        raise FormatError(f"{path} does not hold an analysis ({what})", hint) from None
