"""Words for the numbers: one verdict per comparison, and the design warnings for the whole grid.

The wording follows one rule (Du 2025): a difference is claimed only when the corrected p is below alpha AND
the bootstrap interval excludes 0; every other case says why not (not significant after correction, a design
that cannot reach significance, too few seeds for the difference seen, or a difference seeds cannot vary).
Differences are shown in points (metric x 100).
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from harness.analysis import stats

if TYPE_CHECKING:
    from harness.analysis.results import AnalysisOptions, Comparison

P_LABEL = {"holm": "p_holm", "fdr_bh": "p_bh"}
CORRECTION_NAME = {"holm": "Holm correction", "fdr_bh": "Benjamini-Hochberg correction"}
EFFECT_LABEL = {"hedges_g": "g", "rank_biserial": "r_rb"}


def pts(x: float) -> str:
    """A metric difference in points, one decimal."""
    return "n/a" if math.isnan(x) else f"{x * 100:.1f}"


def interval(ci: tuple[float, float]) -> str:
    """An interval in points: [9.8, 14.9]."""
    return f"[{pts(ci[0])}, {pts(ci[1])}]"


def fmt_p(p: float) -> str:
    """p for prose and tables: '< 0.001' or three decimals."""
    if math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_p_eq(label: str, p: float) -> str:
    """'p_holm = 0.002' or 'p_holm < 0.001'."""
    text = fmt_p(p)
    return f"{label} {text}" if text.startswith("<") else f"{label} = {text}"


def fmt_effect(value: float) -> str:
    """Effect sizes: one decimal from 1 up, two below."""
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"


def fmt_seeds(n: float) -> str:
    """A number of seeds, or a dash when there is nothing to detect."""
    return "—" if not math.isfinite(n) else str(int(n))


def verdict(c: Comparison, options: AnalysisOptions, m: int) -> str:
    """One sentence a reader can quote, with the caveat when the data do not support a claim."""
    r, a, b, alpha = c.result, c.a, c.b, options.alpha
    plab = P_LABEL[options.correction]
    if r.constant:
        if abs(r.mean_diff) < 1e-12:
            return f"{a} and {b} score the same on all {r.n} seeds"
        side = "above" if r.mean_diff > 0 else "below"
        return (f"{a} scores {pts(abs(r.mean_diff))} points {side} {b} on every one of the {r.n} seeds: the "
                "difference does not vary by seed, so seeds add no evidence (not tested)")
    diff = f"{pts(abs(r.mean_diff))} points {interval(r.diff_ci)}"
    signed = f"{a} − {b} = {pts(r.mean_diff)} points {interval(r.diff_ci)}"
    direction = "beats" if r.mean_diff > 0 else "trails"
    effect = f"{EFFECT_LABEL[r.effect_name]} = {fmt_effect(r.effect)}"
    excludes_zero = r.diff_ci[0] > 0 or r.diff_ci[1] < 0
    if c.p_corr < alpha and excludes_zero:
        return f"{a} {direction} {b} by {diff}, {fmt_p_eq(plab, c.p_corr)}, {effect}"
    if c.p_corr < alpha:
        return (f"tentative: {a} {direction} {b} by {diff}, {fmt_p_eq(plab, c.p_corr)}, but the bootstrap "
                "interval includes 0")
    if r.min_p >= alpha:
        return (f"inconclusive: {signed}; with {r.n} seeds the Wilcoxon test cannot reach p < {alpha:g} "
                f"(smallest possible p = {r.min_p:.4g}): run at least {stats.min_wilcoxon_seeds(alpha)} seeds")
    if r.p < alpha:
        return (f"{signed}, p = {fmt_p(r.p)} uncorrected, but not significant after "
                f"{CORRECTION_NAME[options.correction]} over {m} comparisons ({fmt_p_eq(plab, c.p_corr)})")
    if c.seeds_needed > r.n and math.isfinite(c.seeds_needed):
        return (f"no evidence of a difference ({signed}, {fmt_p_eq(plab, c.p_corr)}); underpowered: about "
                f"{fmt_seeds(c.seeds_needed)} seeds would detect {pts(c.power_difference)} points with "
                f"{options.power:.0%} power (have {r.n})")
    return (f"no evidence of a difference ({signed}, {fmt_p_eq(plab, c.p_corr)}); differences outside the "
            "interval are unlikely")


def design_warnings(comps: list[Comparison], options: AnalysisOptions, m: int) -> list[str]:
    """Plain warnings about what this design can and cannot show, counted over the grid."""
    alpha, out = options.alpha, []
    wil = [c for c in comps if c.result.test == "wilcoxon"]
    dead = [c for c in wil if c.result.min_p >= alpha]
    if dead:
        n = min(c.result.n for c in dead)
        out.append(f"{len(dead)} Wilcoxon comparison(s) can never give p < {alpha:g} whatever the data (with {n} "
                   f"seeds the smallest p is {stats.min_wilcoxon_p(n):.4g}); run at least "
                   f"{stats.min_wilcoxon_seeds(alpha)} seeds")
    weak = [c for c in wil if c.result.min_p < alpha <= c.result.min_p * m]
    if weak and options.correction == "holm":
        n = min(c.result.n for c in weak)
        out.append(f"with Holm over {m} comparisons, a Wilcoxon comparison on {n} seeds passes only if others "
                   f"are stronger still (all equally strong gives p_holm = {min(1.0, stats.min_wilcoxon_p(n) * m):.3g}"
                   f"); {stats.min_wilcoxon_seeds(alpha / m)} seeds let every comparison pass on its own")
    tested = [c for c in comps if not c.result.constant]
    low = [c for c in tested if c.p_corr >= alpha and math.isfinite(c.seeds_needed) and c.seeds_needed > c.result.n]
    if low:
        what = "the target difference" if options.target_difference else "the observed difference"
        need = statistics.median(c.seeds_needed for c in low)
        lo, hi = min(c.result.n for c in low), max(c.result.n for c in low)
        out.append(f"{len(low)} of {len(tested)} comparisons were not significant and are underpowered for {what}: "
                   f"median {need:g} seeds needed for {options.power:.0%} power (have "
                   f"{lo if lo == hi else f'{lo}-{hi}'})")
    if options.test == "auto" and wil:
        few = min(c.result.n for c in comps) < 10
        out.append(f"Shapiro-Wilk rejected normal differences in {len(wil)} of {len(tested)} comparisons; those "
                   "used the Wilcoxon test" + ("; with under 10 seeds the check has little power, so "
                                               "--test wilcoxon gives a fully distribution-free reading" if few else ""))
    constant = [c for c in comps if c.result.constant]
    if constant:
        out.append(f"{len(constant)} comparison(s) have the same difference on every seed (both conditions "
                   "deterministic, e.g. a fixed module vs the host): seeds add no evidence there, so they were not "
                   "tested and are not in the correction")
    if comps and min(c.result.n for c in comps) < 10:
        out.append("with fewer than 10 seeds, bootstrap intervals tend to be too narrow; read them with the p-values")
    return out
