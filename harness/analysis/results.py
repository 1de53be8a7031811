"""The analysis's frozen results and options: what analysis.json holds, typed.

A cell is one (experiment, family, library, host pair, data combination, budget); the results of
harness/analysis/cells.py are collected here into one Analysis, which round-trips through JSON exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from harness.analysis import stats
from harness.analysis.resample import Aggregate, ExampleResult
from harness.errors import ConfigError
from harness.runs.io import from_jsonable, to_jsonable

CELL = ("experiment", "family", "library", "pair", "data", "budget")
REQUIRED = (*CELL, "condition", "seed")
BUDGET_FREE = ("host",)  # conditions with no trainable module: one score whatever the budget
ORDER = ("ported", "scratch", "sampled", "host", "zero_pad", "drop")  # display order; others sort after
PRIMARY = (("ported", "scratch"), ("ported", "sampled"))   # the pre-registered primary family, per budget and family


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
    test: str = "t"  # fixed in advance: "t" (paired t, t intervals) or "signflip" (exact, floor 2/2^n)
    correction: str = "holm"  # of the primary family (PRIMARY or the grid's analysis.primary)
    alpha: float = 0.05
    n_boot: int = 10000
    seed: int = 0
    ci: float = 0.95
    target_difference: float = 0.02  # the smallest difference of interest, for power (0.02 = 2 points)
    metric: str = "accuracy"
    power: float = 0.8
    primary: tuple[tuple[str, str], ...] = PRIMARY
    secondary_correction: str = "fdr_bh"  # of every other comparison (vs host, between variants)

    def __post_init__(self) -> None:
        if self.test not in stats.TESTS:
            raise ConfigError(f"unknown test '{self.test}'", f"choose one of {', '.join(stats.TESTS)}")
        for value in (self.correction, self.secondary_correction):
            if value not in stats.CORRECTIONS:
                raise ConfigError(f"unknown correction '{value}'", f"choose one of {', '.join(stats.CORRECTIONS)}")
        if not (0 < self.alpha < 1 and 0 < self.ci < 1 and 0 < self.power < 1 and self.n_boot >= 100):
            raise ConfigError("alpha, ci and power must lie in (0, 1) and n_boot be >= 100",
                              "e.g. alpha 0.05, ci 0.95, power 0.8, n_boot 10000")
        if not 0 < self.target_difference <= 1:
            raise ConfigError(f"target_difference {self.target_difference} is not in (0, 1]",
                              "give it in metric units: 0.02 means 2 points")
        if self.comparisons is not None:
            object.__setattr__(self, "comparisons", tuple((str(a), str(b)) for a, b in self.comparisons))
        object.__setattr__(self, "primary", tuple((str(a), str(b)) for a, b in self.primary))


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
    """One condition's scores in one cell; values are per receiving seed (averaged over originating modules);
    ci is a t-interval of the mean over seeds (honest with few seeds)."""

    cell: CellKey
    condition: str
    n: int
    mean: float
    ci: tuple[float, float]
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    copied_from_budget: int | None = None  # budget-free conditions recorded at one budget only
    origins: tuple[int, ...] = ()  # origin seeds, when the condition starts from several originating modules
    by_origin: tuple[tuple[float, ...], ...] = ()  # [origin][seed] scores, when origins has several


@dataclass(frozen=True)
class Comparison:
    """a vs b in one cell, paired by seed: the seed-level test (result), the example-level evidence beside it
    (examples), the primary p (the seed-level test's, or exact McNemar when seeds cannot vary), corrected
    within its family, power for the target difference, and a verdict in words."""

    cell: CellKey
    a: str
    b: str
    result: stats.PairedResult
    p_corr: float  # primary_p corrected within its family
    seeds_needed: float  # for the given power at alpha (inf: nothing varies by seed)
    seeds_needed_corrected: float  # the same at alpha / m, the strictest Holm step of its family
    power_difference: float  # the difference the power analysis is about (the target)
    missing_seeds: tuple[int, ...]
    verdict: str = ""
    examples: ExampleResult | None = None  # None: some run lacks per-example results (an older record)
    primary_test: str = "none"  # "t", "signflip", "mcnemar", or "none" (untested, with the reason)
    primary_p: float = float("nan")
    family: str = "secondary"  # "primary" (Holm) or "secondary" (Benjamini-Hochberg)


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
class AggregateRow:
    """One comparison at one budget over every cell of an experiment (families x pairs x data), rliable-style."""

    experiment: str
    a: str
    b: str
    budget: int
    result: Aggregate


@dataclass(frozen=True)
class Replicability:
    """In how many of n cells a beats (and trails) b, counted with partial conjunctions (Dror et al. 2017)."""

    experiment: str
    a: str
    b: str
    cells: int
    tested: int
    better: int
    worse: int


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
    aggregates: tuple[AggregateRow, ...] = ()
    replicability: tuple[Replicability, ...] = ()

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
            for name, value in (dataclasses.asdict(c.examples) if c.examples else {}).items():
                if isinstance(value, tuple):
                    row[f"ex_{name}_low"], row[f"ex_{name}_high"] = value
                else:
                    row[f"ex_{name}"] = value
            row.update(family=c.family, primary_test=c.primary_test, primary_p=c.primary_p, p_corr=c.p_corr,
                       seeds_needed=c.seeds_needed, seeds_needed_corrected=c.seeds_needed_corrected,
                       power_difference=c.power_difference, missing_seeds=" ".join(map(str, c.missing_seeds)),
                       verdict=c.verdict)
            rows.append(row)
        return pd.DataFrame(rows)
