"""The grid analysis: cells, paired comparisons, grid-wide correction, omnibus tests, power and warnings.

A cell is one (experiment, family, library, host pair, data combination, budget); within it every condition
is scored once per seed, and conditions are compared paired by seed. The numbers come from harness/stats.py;
this module only groups, corrects across the whole grid, and words the verdicts (harness/verdicts.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from harness import stats
from harness.serial import from_jsonable, to_jsonable
from harness.verdicts import design_warnings, verdict
from hubport.errors import ConfigError, StatsError

CELL = ("experiment", "family", "library", "pair", "data", "budget")
REQUIRED = (*CELL, "condition", "seed")
BUDGET_FREE = ("host",)  # conditions with no trainable module: one score whatever the budget
ORDER = ("ported", "scratch", "sampled", "host", "zero_pad", "drop")  # display order; others sort after


def condition_order(names: list[str] | set[str]) -> list[str]:
    """Conditions in reading order: ported first, its variants next, then the baselines, then the rest."""
    def rank(name: str) -> tuple[int, str]:
        if name.startswith("ported"):
            return (0 if name == "ported" else 1, name)
        return (2 + ORDER.index(name) if name in ORDER else 2 + len(ORDER), name)
    return sorted(names, key=rank)


@dataclass(frozen=True)
class AnalysisOptions:
    """How to analyse a run table; target_difference is in metric units (0.02 = 2 points)."""

    comparisons: tuple[tuple[str, str], ...] | None = None  # None: each "ported*" condition vs each other one
    test: str = "auto"  # "auto" (Shapiro-Wilk decides), "t" or "wilcoxon"
    correction: str = "holm"  # "holm" or "fdr_bh", across the whole grid
    alpha: float = 0.05
    n_boot: int = 10000
    seed: int = 0
    ci: float = 0.95
    target_difference: float | None = None
    metric: str = "accuracy"
    power: float = 0.8

    def __post_init__(self) -> None:
        if self.test not in stats.TESTS:
            raise ConfigError(f"unknown test '{self.test}'", f"choose one of {', '.join(stats.TESTS)}")
        if self.correction not in stats.CORRECTIONS:
            raise ConfigError(f"unknown correction '{self.correction}'",
                              f"choose one of {', '.join(stats.CORRECTIONS)}")
        if not (0 < self.alpha < 1 and 0 < self.ci < 1 and 0 < self.power < 1 and self.n_boot >= 100):
            raise ConfigError("alpha, ci and power must lie in (0, 1) and n_boot be >= 100",
                              "e.g. alpha 0.05, ci 0.95, power 0.8, n_boot 10000")
        if self.target_difference is not None and not 0 < self.target_difference <= 1:
            raise ConfigError(f"target_difference {self.target_difference} is not in (0, 1]",
                              "give it in metric units: 0.02 means 2 points")
        if self.comparisons is not None:
            object.__setattr__(self, "comparisons", tuple((str(a), str(b)) for a, b in self.comparisons))


@dataclass(frozen=True, order=True)
class CellKey:
    """Where a comparison lives in the grid."""

    experiment: str
    family: str
    library: str
    pair: str
    data: str
    budget: int

    def label(self) -> str:
        """One line naming the cell, for tables and warnings."""
        return f"{self.family}/{self.library} · {self.pair} · {self.data} · budget {self.budget}"


@dataclass(frozen=True)
class ConditionSummary:
    """One condition's scores in one cell; ci is a t-interval of the mean (honest with few seeds)."""

    cell: CellKey
    condition: str
    n: int
    mean: float
    ci: tuple[float, float]
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    copied_from_budget: int | None = None  # budget-free conditions recorded at one budget only


@dataclass(frozen=True)
class Comparison:
    """a vs b in one cell, paired by seed, with grid-corrected p, power and a verdict in words."""

    cell: CellKey
    a: str
    b: str
    result: stats.PairedResult
    p_corr: float
    seeds_needed: float  # for the given power at alpha (inf: no difference to detect)
    seeds_needed_corrected: float  # the same at alpha / m, the strictest Holm/Bonferroni step
    power_difference: float  # the difference the power analysis is about (observed or target)
    missing_seeds: tuple[int, ...]
    verdict: str = ""


@dataclass(frozen=True)
class CellOmnibus:
    """All conditions of one cell at once, on the seeds where every condition was scored."""

    cell: CellKey
    conditions: tuple[str, ...]
    result: stats.OmnibusResult
    p_corr: float


@dataclass(frozen=True)
class FamilyOmnibus:
    """Family x condition: do the paired differences a - b differ between families (same pair, data, budget)?"""

    experiment: str
    pair: str
    data: str
    budget: int
    a: str
    b: str
    families: tuple[str, ...]
    result: stats.OmnibusResult
    p_corr: float


@dataclass(frozen=True)
class Analysis:
    """Everything analysis.json holds; frozen and rebuilt from JSON by Analysis.from_dict."""

    options: AnalysisOptions
    conditions: tuple[ConditionSummary, ...]
    comparisons: tuple[Comparison, ...]
    cell_omnibus: tuple[CellOmnibus, ...]
    family_omnibus: tuple[FamilyOmnibus, ...]
    warnings: tuple[str, ...]
    versions: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict:
        """JSON-ready dict (non-finite floats become null)."""
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict) -> Analysis:
        """Rebuild from to_dict() output."""
        return from_jsonable(cls, data)

    def comparisons_frame(self) -> pd.DataFrame:
        """One flat row per comparison: the CSV table."""
        rows = []
        for c in self.comparisons:
            row = {**dataclasses.asdict(c.cell), "a": c.a, "b": c.b}
            for name, value in dataclasses.asdict(c.result).items():
                if isinstance(value, tuple):
                    row[f"{name}_low"], row[f"{name}_high"] = value
                else:
                    row[name] = value
            row.update(p_corr=c.p_corr, seeds_needed=c.seeds_needed, seeds_needed_corrected=c.seeds_needed_corrected,
                       power_difference=c.power_difference, missing_seeds=" ".join(map(str, c.missing_seeds)),
                       verdict=c.verdict)
            rows.append(row)
        return pd.DataFrame(rows)


def check_table(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Validate the tidy run table and return the columns used, with clean dtypes."""
    missing = [c for c in (*REQUIRED, metric) if c not in table.columns]
    if missing:
        raise StatsError(f"run table lacks column(s) {', '.join(missing)}", "pass harness.records.load_table output")
    t = table.loc[:, [*REQUIRED, metric]].copy()
    t[metric] = pd.to_numeric(t[metric], errors="coerce")
    if t[metric].isna().any() or not t[metric].between(0, 1).all():
        raise StatsError(f"column '{metric}' must hold numbers in [0, 1] (a fraction; reports show points)")
    for col in ("experiment", "family", "library", "pair", "data", "condition"):
        t[col] = t[col].astype(str)
    t["budget"], t["seed"] = t["budget"].astype(int), t["seed"].astype(int)
    dup = t.duplicated(list(REQUIRED))
    if dup.any():
        row = t[dup].iloc[0]
        raise StatsError(f"{int(dup.sum())} duplicate run rows, e.g. {row['condition']} seed {row['seed']} in "
                         f"{row['family']} budget {row['budget']}", "keep one row per run and budget")
    return t


def spread_budget_free(t: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Copy a host-only score recorded at one budget to every budget of its group, and say so."""
    group_cols, notes, extra = list(CELL[:-1]), [], []
    for key, group in t.groupby(group_cols, sort=True):
        budgets = set(group["budget"])
        for cond in BUDGET_FREE:
            rows = group[group["condition"] == cond]
            recorded = set(rows["budget"])
            if len(recorded) != 1 or budgets == recorded:
                continue
            (b0,) = recorded
            for b in sorted(budgets - recorded):
                extra.append(rows.assign(budget=b, _from=b0))
            notes.append(f"'{cond}' was recorded at budget {b0} only ({key[1]}/{key[2]} · {key[3]} · {key[4]}): "
                         "it is compared with that same score at every budget")
    if not extra:
        return t.assign(_from=np.nan), notes
    return pd.concat([t.assign(_from=np.nan), *extra], ignore_index=True), notes


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


def _corrected(items: list, method: str) -> list:
    p = stats.correct(np.array([x.result.p for x in items], dtype=float), method) if items else []
    return [dataclasses.replace(x, p_corr=float(q)) for x, q in zip(items, p)]


def analyze_table(table: pd.DataFrame, options: AnalysisOptions | None = None) -> Analysis:
    """Analyse a tidy run table (see harness.records.load_table) into a frozen Analysis."""
    options = options or AnalysisOptions()
    t, notes = spread_budget_free(check_table(table, options.metric))
    summaries = summarize_conditions(t, options)
    comps, diffs, skipped = compare_cells(summaries, options)
    if not comps:
        raise StatsError("no comparison has both conditions on >= 3 common seeds",
                         "check the conditions and seeds in the run table")
    comps = _corrected(comps, options.correction)
    m = sum(not math.isnan(c.result.p) for c in comps)
    comps = add_power(comps, diffs, options, m)
    comps = [dataclasses.replace(c, verdict=verdict(c, options, m)) for c in comps]
    omni = _corrected(cell_omnibus(summaries, comps, options), options.correction)
    fam = _corrected(family_omnibus(comps, diffs, options), options.correction)
    warn = notes + skipped + design_warnings(comps, options, m)
    return Analysis(options, tuple(summaries), tuple(comps), tuple(omni), tuple(fam), tuple(warn), _versions())


def _versions() -> tuple[tuple[str, str], ...]:
    import importlib.metadata as md

    return tuple((name, md.version(name)) for name in ("numpy", "pandas", "pingouin", "scipy"))


def analyze_dir(run_dir: Path, options: AnalysisOptions | None = None) -> Analysis:
    """Analyse a run folder's records and write run_dir/analysis.json and run_dir/analysis.csv."""
    from harness.records import load_table

    run_dir = Path(run_dir)
    analysis = analyze_table(load_table(run_dir), options)
    write_analysis(run_dir, analysis)
    return analysis


def write_analysis(run_dir: Path, analysis: Analysis) -> None:
    """analysis.json (sorted keys) and analysis.csv (one row per comparison), written whole."""
    run_dir = Path(run_dir)
    text = json.dumps(analysis.to_dict(), sort_keys=True, indent=1, allow_nan=False)
    (run_dir / "analysis.json").write_text(text + "\n", encoding="utf-8")
    analysis.comparisons_frame().to_csv(run_dir / "analysis.csv", index=False)


def load_analysis(run_dir: Path) -> Analysis:
    """Read run_dir/analysis.json back."""
    path = Path(run_dir) / "analysis.json"
    if not path.is_file():
        raise StatsError(f"no analysis at {path}", "run `harness analyze DIR` first")
    return Analysis.from_dict(json.loads(path.read_text(encoding="utf-8")))
