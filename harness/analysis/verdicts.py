"""Words for the numbers: one verdict per comparison, and the design warnings for the whole grid.

The wording follows one rule: a difference is claimed only when the family-corrected primary p is below alpha AND
its interval (seed-level t interval, or the example-level one for deterministic comparisons) excludes 0; every
other case says why not (not significant after correction, a design that cannot reach significance, too few
seeds for the target difference, or nothing recorded to test a constant difference on).
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
EFFECT_LABEL = {"d_av": "d_av"}


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


def evidence_interval(c: Comparison) -> tuple[float, float]:
    """The interval a claim rests on: the seed-level t interval, or the example-level one when seeds cannot vary."""
    if c.primary_test == "mcnemar" and c.examples is not None:
        return c.examples.ci
    return c.result.diff_ci


def verdict(c: Comparison, options: AnalysisOptions, m: int) -> str:
    """One sentence a reader can quote, with the caveat when the data do not support a claim."""
    r, a, b, alpha = c.result, c.a, c.b, options.alpha
    plab = P_LABEL[options.correction if c.family == "primary" else options.secondary_correction]
    ci = evidence_interval(c)
    if c.primary_test == "none":
        if r.constant and abs(r.mean_diff) < 1e-12:
            return f"{a} and {b} score the same on all {r.n} seeds (no per-example results to test it on)"
        return (f"{a} − {b} = {pts(r.mean_diff)} points on every seed: the difference does not vary by seed and "
                "no per-example results were recorded, so it is untested (rerun to record them)")
    level = "over examples (McNemar), " if c.primary_test == "mcnemar" else ""
    diff = f"{pts(abs(r.mean_diff))} points {interval(ci)}"
    signed = f"{a} − {b} = {pts(r.mean_diff)} points {interval(ci)}"
    direction = "beats" if r.mean_diff > 0 else "trails"
    effect = "" if math.isnan(r.effect) else f", d_av = {fmt_effect(r.effect)}"
    excludes_zero = ci[0] > 0 or ci[1] < 0
    if c.p_corr < alpha and excludes_zero:
        return f"{a} {direction} {b} by {diff}, {level}{fmt_p_eq(plab, c.p_corr)}{effect}"
    if c.p_corr < alpha:
        return (f"tentative: {a} {direction} {b} by {diff}, {level}{fmt_p_eq(plab, c.p_corr)}, but the interval "
                "includes 0")
    if c.primary_test == "signflip" and r.min_p >= alpha:
        return (f"inconclusive: {signed}; with {r.n} seeds the sign-flip test cannot reach p < {alpha:g} "
                f"(its floor is 2/2^{r.n} = {r.min_p:.4g}): run at least {stats.min_signflip_seeds(alpha)} seeds")
    if c.primary_p < alpha:
        return (f"{signed}, {level}p = {fmt_p(c.primary_p)} uncorrected, but not significant after "
                f"{CORRECTION_NAME[options.correction if c.family == 'primary' else options.secondary_correction]}"
                f" over {m} {c.family} comparisons ({fmt_p_eq(plab, c.p_corr)})")
    if c.seeds_needed > r.n and math.isfinite(c.seeds_needed):
        return (f"no evidence of a difference ({signed}, {fmt_p_eq(plab, c.p_corr)}); underpowered: about "
                f"{fmt_seeds(c.seeds_needed)} seeds would detect {pts(c.power_difference)} points with "
                f"{options.power:.0%} power (have {r.n})")
    return (f"no evidence of a difference ({signed}, {fmt_p_eq(plab, c.p_corr)}); differences outside the "
            "interval are unlikely")


def design_warnings(comps: list[Comparison], options: AnalysisOptions, sizes: dict[str, int],
                    have_examples: bool) -> list[str]:
    """Plain warnings about what this design can and cannot show, counted over the grid."""
    alpha, out = options.alpha, []
    flips = [c for c in comps if c.primary_test == "signflip"]
    dead = [c for c in flips if c.result.min_p >= alpha]
    if dead:
        n = min(c.result.n for c in dead)
        out.append(f"{len(dead)} sign-flip comparison(s) can never give p < {alpha:g} whatever the data (with {n} "
                   f"seeds its floor is 2/2^{n} = {2 / 2**n:.4g}); run at least {stats.min_signflip_seeds(alpha)} "
                   "seeds, or use the paired t-test (the default)")
    tested = [c for c in comps if c.primary_test != "none"]
    low = [c for c in tested if c.p_corr >= alpha and math.isfinite(c.seeds_needed) and c.seeds_needed > c.result.n]
    if low:
        need = statistics.median(c.seeds_needed for c in low)
        lo, hi = min(c.result.n for c in low), max(c.result.n for c in low)
        out.append(f"{len(low)} of {len(tested)} comparisons were not significant and are underpowered for "
                   f"{pts(options.target_difference)} points: median {need:g} seeds needed for {options.power:.0%} "
                   f"power (have {lo if lo == hi else f'{lo}-{hi}'})")
    mc = [c for c in comps if c.primary_test == "mcnemar"]
    if mc:
        out.append(f"{len(mc)} comparison(s) are deterministic (the same answers on every seed, e.g. a fixed port "
                   "vs the host at budget 0): tested with the exact McNemar test over the evaluation examples, so "
                   "they speak for these examples and this originating module, not for other seeds")
    untested = [c for c in comps if c.primary_test == "none"]
    if untested:
        why = "" if have_examples else " (the records have no per-example files: made before they were kept)"
        out.append(f"{len(untested)} comparison(s) have the same difference on every seed and no per-example "
                   f"results{why}: untested and not in any correction; rerun those runs to test them")
    single = sorted({c.cell.label() for c in comps if c.a.startswith("ported") and c.result.n_origins == 1})
    if single:
        out.append(f"{len(single)} cell(s) port one originating module (origin.seed fixed): their conclusions are "
                   "about that module, not the method; `origin.seeds: [0, 1, 2]` in the grid makes it a random factor")
    out.append(f"families: {sizes.get('primary', 0)} primary comparisons ({', '.join(f'{a} − {b}' for a, b in options.primary)}"
               f" per cell) with {CORRECTION_NAME[options.correction]}; {sizes.get('secondary', 0)} secondary ones "
               f"with {CORRECTION_NAME[options.secondary_correction]}")
    return out
