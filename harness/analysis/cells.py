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

from harness.analysis import resample, stats
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


Runs = dict  # (cell, condition) -> {(origin seed, seed): (run_id, budget whose examples to read)}


def summarize_conditions(t: pd.DataFrame, options: AnalysisOptions
                         ) -> tuple[list[ConditionSummary], Runs, list[str]]:
    """Mean and t-interval per condition and cell over receiving seeds (origins averaged), where its runs are."""
    out, runs, notes = [], {}, []
    for key, g in t.groupby([*CELL, "condition"], sort=True):
        cell, cond = CellKey(*key[:-1]), key[-1]
        values, all_origins, seeds, dropped = _grid(g, options.metric)
        if dropped:
            notes.append(f"{cell.label()}: {cond} lacks some originating modules on seeds "
                         f"{', '.join(map(str, dropped))}; they are left out")
        origins = all_origins if len(all_origins) > 1 else ()
        src = g["_from"].dropna()
        per_seed = values.mean(0)
        out.append(ConditionSummary(cell, cond, per_seed.size, float(per_seed.mean()), _t_interval(per_seed, options.ci),
                                    seeds, tuple(per_seed.tolist()), int(src.iloc[0]) if len(src) else None,
                                    origins, tuple(tuple(r) for r in values.tolist()) if origins else ()))
        read = g["_from"].fillna(g["budget"]).astype(int)
        runs[(cell, cond)] = {(int(o), int(s)): (r, int(b)) for o, s, r, b in
                              zip(g["origin_seed"], g["seed"], g["run_id"], read)}
    return out, runs, notes


def _grid(g: pd.DataFrame, metric: str) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...], list[int]]:
    """[origins, seeds] scores of one condition, keeping the seeds scored under every origin."""
    origins, o_idx = np.unique(g["origin_seed"].to_numpy(int), return_inverse=True)
    seeds, s_idx = np.unique(g["seed"].to_numpy(int), return_inverse=True)
    values = np.full((origins.size, seeds.size), np.nan)
    values[o_idx, s_idx] = g[metric].to_numpy(float)
    keep = ~np.isnan(values).any(0)
    return (values[:, keep], tuple(int(o) for o in origins), tuple(int(x) for x in seeds[keep]),
            [int(x) for x in seeds[~keep]])


def _matrix(s: ConditionSummary, seeds: list[int]) -> np.ndarray:
    """[origins, seeds] scores of a condition on the given seeds."""
    rows = s.by_origin or (s.values,)
    col = {seed: i for i, seed in enumerate(s.seeds)}
    return np.array([[row[col[x]] for x in seeds] for row in rows])


def _origin_rows(sa: ConditionSummary, sb: ConditionSummary) -> tuple[list[int] | None, list[int] | None]:
    """Which origin rows of a and b to pair: equal origin seeds pair row by row; a single row broadcasts."""
    if sa.origins and sb.origins:
        common = sorted(set(sa.origins) & set(sb.origins))
        return [sa.origins.index(o) for o in common], [sb.origins.index(o) for o in common]
    return None, None


def compare_cells(summaries: list[ConditionSummary], runs: Runs, examples: dict | None, options: AnalysisOptions
                  ) -> tuple[list[Comparison], dict[int, np.ndarray], list[str]]:
    """Seed-level tests and example-level evidence for every requested pair present in a cell (uncorrected)."""
    by_cell: dict[CellKey, dict[str, ConditionSummary]] = {}
    for s in summaries:
        by_cell.setdefault(s.cell, {})[s.condition] = s
    out, diffs, notes, pending = [], {}, [], []
    for cell, conds in sorted(by_cell.items()):
        for a, b in options.comparisons or default_pairs(list(conds)):
            if a not in conds or b not in conds:
                continue
            common = sorted(set(conds[a].seeds) & set(conds[b].seeds))
            missing = tuple(sorted(set(conds[a].seeds) ^ set(conds[b].seeds)))
            if len(common) < stats.MIN_PAIRS:
                notes.append(f"{cell.label()}: {a} vs {b} skipped, only {len(common)} paired seeds "
                             f"(need {stats.MIN_PAIRS})")
                continue
            if missing:
                notes.append(f"{cell.label()}: seeds {', '.join(map(str, missing))} lack {a} or {b}; "
                             f"{a} vs {b} uses the {len(common)} common seeds")
            rows_a, rows_b = _origin_rows(conds[a], conds[b])
            xa, xb = _matrix(conds[a], common), _matrix(conds[b], common)
            if rows_a is not None:
                xa, xb = xa[rows_a], xb[rows_b]
            stream = _stream(options, cell, a, b)
            res = stats.paired_test(xa, xb, test=options.test, ci=options.ci, seed=stream)
            if examples:
                pending.append((len(out), _correct_rows(conds[a], common, rows_a, runs, examples),
                                _correct_rows(conds[b], common, rows_b, runs, examples), stream))
            diffs[len(out)] = stats.differences(xa, xb).mean(0)
            out.append(Comparison(cell, a, b, res, math.nan, math.nan, math.nan, math.nan, missing))
    return _add_examples(out, pending, examples or {}, options), diffs, notes


def _correct_rows(s: ConditionSummary, seeds: list[int], rows: list[int] | None, runs: Runs,
                  examples: dict) -> list[list[tuple[str, int]]] | None:
    """[origins][seeds] (run_id, budget) of a condition's per-example results, or None when one is missing."""
    table = runs[(s.cell, s.condition)]
    origins = s.origins or (min(o for o, _ in table),)
    if rows is not None:
        origins = tuple(origins[i] for i in rows)
    keys = [[table[(o, seed)] for seed in seeds] for o in origins]
    if any(examples.get(r, {}).get(b) is None for row in keys for r, b in row):
        return None
    return keys


def _add_examples(comps: list[Comparison], pending: list, examples: dict,
                  options: AnalysisOptions) -> list[Comparison]:
    """The hierarchical bootstrap of every comparison whose runs all have per-example results. The example
    resampling sums are linear in the runs, so each evaluation set gets one weight matrix and one matrix product
    over all its runs; a comparison then only differences two sets of rows."""
    ready = [(i, ka, kb, stream) for i, ka, kb, stream in pending if ka is not None and kb is not None]
    groups: dict[tuple, list] = {}
    for item in ready:
        cell = comps[item[0]].cell
        n = examples[item[1][0][0][0]][item[1][0][0][1]].size
        if all(examples[r][b].size == n for row in (*item[1], *item[2]) for r, b in row):
            groups.setdefault((cell.experiment, cell.data, n), []).append(item)
    out = list(comps)
    for key, items in groups.items():
        weights = resample.example_weights(key[2], options.n_boot, _stream(options, *key))
        index = {k: j for j, k in enumerate(dict.fromkeys(k for it in items for row in (*it[1], *it[2]) for k in row))}
        runs = np.stack([examples[r][b] for r, b in index]).astype(np.float32)
        sums = runs @ weights.T   # [runs, n_boot]
        for i, ka, kb, stream in items:
            xa, xb = (np.stack([[runs[index[k]] for k in row] for row in keys]) for keys in (ka, kb))
            ya, yb = (np.stack([[sums[index[k]] for k in row] for row in keys]) for keys in (ka, kb))
            out[i] = dataclasses.replace(out[i], examples=resample.from_sums(
                xa, xb, ya, yb, ci=options.ci, seed=stream, delta=options.target_difference, alpha=options.alpha))
    return out


def add_power(comps: list[Comparison], options: AnalysisOptions, m: dict[str, int]) -> list[Comparison]:
    """Seeds needed for the target difference given the observed seed-level SD, at alpha and at alpha / m of
    the comparison's family (never the observed effect: Hoenig & Heisey 2001)."""
    out = []
    for c in comps:
        sd, diff = c.result.sd, options.target_difference
        if c.result.constant or not sd > 0:
            out.append(dataclasses.replace(c, seeds_needed=math.inf, seeds_needed_corrected=math.inf,
                                           power_difference=diff))
            continue
        need = [stats.seeds_needed(diff / sd, alpha=alpha, power=options.power, test=c.result.test)
                for alpha in (options.alpha, options.alpha / max(m.get(c.family, 1), 1))]
        out.append(dataclasses.replace(c, seeds_needed=need[0], seeds_needed_corrected=need[1],
                                       power_difference=diff))
    return out


def cell_omnibus(summaries: list[ConditionSummary], options: AnalysisOptions) -> list[CellOmnibus]:
    """rm-ANOVA per cell (Friedman with --test signflip): fixed with the test, never chosen by a pretest."""
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
        out.append(CellOmnibus(cell, tuple(s.condition for s in conds),
                               stats.repeated_omnibus(matrix, parametric=options.test == "t"), math.nan))
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
        parametric = options.test == "t"
        names = tuple(f"{comps[i].cell.family}/{comps[i].cell.library}" for i in idx)
        out.append(FamilyOmnibus(*key, names, stats.between_omnibus(arrays, parametric=parametric), math.nan))
    return out
