"""Per-cell work: condition summaries, paired comparisons, power, and the omnibus tests.

Each function takes the frozen results of the step before and returns new ones; the numbers come from
harness/analysis/stats.py, and correction across the grid happens once, in harness/analysis/analyze.py.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis import stats
from harness.analysis.results import (
    CELL,
    AnalysisOptions,
    CellKey,
    CellOmnibus,
    Comparison,
    ConditionSummary,
    FamilyOmnibus,
    condition_order,
)


def default_pairs(conditions: list[str]) -> list[tuple[str, str]]:
    """Each condition starting with 'ported' against each other condition, every unordered pair once."""
    pairs: list[tuple[str, str]] = []
    ordered = condition_order(conditions)
    for a in (c for c in ordered if c.startswith("ported")):
        for b in ordered:
            if b != a and (b, a) not in pairs:
                pairs.append((a, b))
    return pairs


def _t_interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    n, mean = values.size, float(values.mean())
    if n < 2:
        return math.nan, math.nan
    half = scipy.stats.t.ppf(0.5 + ci / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def _stream(options: AnalysisOptions, *parts: object) -> int:
    """A bootstrap seed per comparison, stable when other comparisons are added or removed."""
    tag = zlib.crc32("|".join(map(str, parts)).encode())
    return int(np.random.SeedSequence([options.seed, tag]).generate_state(1)[0])


def summarize_conditions(t: pd.DataFrame, options: AnalysisOptions) -> list[ConditionSummary]:
    """Mean and t-interval per condition and cell."""
    out = []
    for key, g in t.groupby([*CELL, "condition"], sort=True):
        g = g.sort_values("seed")
        values = g[options.metric].to_numpy(float)
        src = g["_from"].dropna()
        out.append(ConditionSummary(CellKey(*key[:-1]), key[-1], values.size, float(values.mean()),
                                    _t_interval(values, options.ci), tuple(g["seed"].astype(int)),
                                    tuple(values.tolist()), int(src.iloc[0]) if len(src) else None))
    return out


def compare_cells(summaries: list[ConditionSummary], options: AnalysisOptions
                  ) -> tuple[list[Comparison], dict[int, np.ndarray], list[str]]:
    """Paired tests for every requested pair present in a cell (uncorrected), their differences, warnings."""
    by_cell: dict[CellKey, dict[str, ConditionSummary]] = {}
    for s in summaries:
        by_cell.setdefault(s.cell, {})[s.condition] = s
    out, diffs, notes = [], {}, []
    for cell, conds in sorted(by_cell.items()):
        pairs = options.comparisons or default_pairs(list(conds))
        for a, b in pairs:
            if a not in conds or b not in conds:
                continue
            sa, sb = (dict(zip(conds[x].seeds, conds[x].values)) for x in (a, b))
            common = sorted(set(sa) & set(sb))
            missing = tuple(sorted(set(sa) ^ set(sb)))
            if len(common) < stats.MIN_PAIRS:
                notes.append(f"{cell.label()}: {a} vs {b} skipped, only {len(common)} paired seeds "
                             f"(need {stats.MIN_PAIRS})")
                continue
            if missing:
                notes.append(f"{cell.label()}: seeds {', '.join(map(str, missing))} lack {a} or {b}; "
                             f"{a} vs {b} uses the {len(common)} common seeds")
            xa, xb = np.array([sa[s] for s in common]), np.array([sb[s] for s in common])
            res = stats.paired_test(xa, xb, test=options.test, alpha=options.alpha, n_boot=options.n_boot,
                                    ci=options.ci, seed=_stream(options, cell, a, b))
            diffs[len(out)] = stats.differences(xa, xb)
            out.append(Comparison(cell, a, b, res, math.nan, math.nan, math.nan, math.nan, missing))
    return out, diffs, notes


def add_power(comps: list[Comparison], diffs: dict[int, np.ndarray], options: AnalysisOptions,
              m: int) -> list[Comparison]:
    """Seeds needed for the observed (or target) difference, at alpha and at alpha / m."""
    out = []
    for i, c in enumerate(comps):
        if c.result.constant:
            out.append(c)
            continue
        sd = float(diffs[i].std(ddof=1))
        diff = options.target_difference or abs(c.result.mean_diff)
        effect = diff / sd
        need = [stats.seeds_needed(effect, alpha=alpha, power=options.power, test=c.result.test)
                for alpha in (options.alpha, options.alpha / max(m, 1))]
        out.append(dataclasses.replace(c, seeds_needed=need[0], seeds_needed_corrected=need[1],
                                       power_difference=diff))
    return out


def cell_omnibus(summaries: list[ConditionSummary], comps: list[Comparison],
                 options: AnalysisOptions) -> list[CellOmnibus]:
    """rm-ANOVA (or Friedman when a paired difference failed normality or the test is forced) per cell."""
    by_cell: dict[CellKey, list[ConditionSummary]] = {}
    for s in summaries:
        by_cell.setdefault(s.cell, []).append(s)
    out = []
    for cell, conds in sorted(by_cell.items()):
        common = sorted(set.intersection(*(set(s.seeds) for s in conds)))
        if len(conds) < 2 or len(common) < stats.MIN_PAIRS:
            continue
        matrix = np.array([[dict(zip(s.seeds, s.values))[k] for s in conds] for k in common])
        resid = matrix - matrix.mean(0) - matrix.mean(1, keepdims=True) + matrix.mean()
        if np.abs(resid).max() <= 1e-12:  # no seed-to-seed noise at all: an F or Q would be infinite
            continue
        if options.test == "auto":
            parametric = all(c.result.test != "wilcoxon" for c in comps if c.cell == cell)
        else:
            parametric = options.test == "t"
        out.append(CellOmnibus(cell, tuple(s.condition for s in conds),
                               stats.repeated_omnibus(matrix, parametric=parametric), math.nan))
    return out


def family_omnibus(comps: list[Comparison], diffs: dict[int, np.ndarray],
                   options: AnalysisOptions) -> list[FamilyOmnibus]:
    """One-way test of the paired differences across families, per (experiment, pair, data, budget, a, b)."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(comps):
        k = c.cell
        groups.setdefault((k.experiment, k.pair, k.data, k.budget, c.a, c.b), []).append(i)
    out = []
    for key, idx in sorted(groups.items()):
        if len(idx) < 2:
            continue
        arrays = [diffs[i] for i in idx]
        if all(stats.is_constant(a) for a in arrays):
            continue
        parametric = options.test == "t" or (options.test == "auto" and stats.looks_normal(arrays, options.alpha))
        names = tuple(f"{comps[i].cell.family}/{comps[i].cell.library}" for i in idx)
        out.append(FamilyOmnibus(*key, names, stats.between_omnibus(arrays, parametric=parametric), math.nan))
    return out
