"""Families of comparisons: which p goes into which correction, and the grid-level summaries of a comparison.

The primary family is small and fixed in advance: ported - scratch and ported - sampled (or the grid file's
analysis.primary) in every cell, corrected with Holm; every other comparison (vs host, between ported variants)
is secondary, corrected with Benjamini-Hochberg. Across cells, "holds in k of n cells" is a replicability count
(Dror et al. 2017) and each comparison per budget gets an rliable-style stratified aggregate (Agarwal et al.
2021) with its probability of improvement.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

from harness.analysis import resample, stats
from harness.analysis.results import (
    AggregateRow,
    AnalysisOptions,
    Comparison,
    ConditionSummary,
    Replicability,
)


def primary_evidence(c: Comparison) -> Comparison:
    """The comparison's primary test: the seed-level test when seeds vary; the exact McNemar test on the shared
    examples when both conditions are deterministic (the seed-level difference is then constant); else none."""
    if not c.result.constant:
        return dataclasses.replace(c, primary_test=c.result.test, primary_p=c.result.p)
    if c.examples is not None and c.examples.deterministic:
        return dataclasses.replace(c, primary_test="mcnemar", primary_p=c.examples.mcnemar_p)
    return dataclasses.replace(c, primary_test="none", primary_p=math.nan)


def correct_families(comps: list[Comparison], options: AnalysisOptions) -> tuple[list[Comparison], dict[str, int]]:
    """Tag each comparison primary or secondary, correct each family on its own; returns the tests per family."""
    primary = set(options.primary)
    comps = [dataclasses.replace(c, family="primary" if (c.a, c.b) in primary else "secondary") for c in comps]
    out, sizes = list(comps), {}
    for family, method in (("primary", options.correction), ("secondary", options.secondary_correction)):
        idx = [i for i, c in enumerate(comps) if c.family == family]
        p = np.array([comps[i].primary_p for i in idx], dtype=float)
        sizes[family] = int((~np.isnan(p)).sum())
        if idx:
            for i, q in zip(idx, stats.correct(p, method)):
                out[i] = dataclasses.replace(comps[i], p_corr=float(q))
    return out, sizes


def one_sided(c: Comparison, positive: bool) -> float:
    """The primary p turned one-sided towards 'a beats b' (positive) or 'a trails b'."""
    p, diff = c.primary_p, c.result.mean_diff
    if math.isnan(p):
        return math.nan
    return p / 2 if (diff > 0) == positive and diff != 0 else 1 - p / 2


def replicability(comps: list[Comparison], options: AnalysisOptions) -> list[Replicability]:
    """Per (experiment, a, b): in how many cells a beats b, and trails it, at alpha (partial conjunctions)."""
    groups: dict[tuple, list[Comparison]] = {}
    for c in comps:
        groups.setdefault((c.cell.experiment, c.a, c.b), []).append(c)
    out = []
    for (exp, a, b), group in groups.items():
        better = stats.replicability_count(np.array([one_sided(c, True) for c in group]), options.alpha)
        worse = stats.replicability_count(np.array([one_sided(c, False) for c in group]), options.alpha)
        tested = sum(not math.isnan(c.primary_p) for c in group)
        out.append(Replicability(exp, a, b, len(group), tested, better, worse))
    return out


def aggregates(summaries: list[ConditionSummary], comps: list[Comparison],
               options: AnalysisOptions) -> list[AggregateRow]:
    """Per (experiment, a, b, budget) over every cell holding it: stratified bootstrap of the mean difference
    and of the probability of improvement (seeds resampled within cells)."""
    values = {(s.cell, s.condition): dict(zip(s.seeds, s.values)) for s in summaries}
    groups: dict[tuple, list] = {}
    for c in comps:
        va, vb = values[(c.cell, c.a)], values[(c.cell, c.b)]
        seeds = sorted(set(va) & set(vb))
        groups.setdefault((c.cell.experiment, c.a, c.b, c.cell.budget), []).append(
            (np.array([va[s] for s in seeds]), np.array([vb[s] for s in seeds])))
    out = []
    for key, cells in sorted(groups.items()):
        tag = zlib.crc32("|".join(map(str, ("aggregate", *key))).encode())
        seed = int(np.random.SeedSequence([options.seed, tag]).generate_state(1)[0])
        out.append(AggregateRow(*key, resample.stratified_aggregate(cells, n_boot=options.n_boot, ci=options.ci,
                                                                    seed=seed)))
    return out

