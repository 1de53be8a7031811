"""Pure statistics over paired per-seed scores: tests, effect sizes, bootstrap intervals, power, corrections.

Every function takes plain arrays with documented shapes, validates them (raising StatsError, never asserting)
and returns floats or frozen results, so that the grid analysis in harness/analysis/analyze.py stays bookkeeping only.
Scores are paired by seed: ``a[i]`` and ``b[i]`` come from the same seed (same data order and init stream).
The numbers are pingouin's and scipy's: scipy is called directly where pingouin's DataFrame wrapping would
dominate a 1,440-run grid, and tests/test_stats.py checks every such number against pingouin. Bootstraps go
through scipy.stats.bootstrap, vectorised and seeded, so the same seed always gives the same interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats

from harness.errors import StatsError

TESTS = ("auto", "t", "wilcoxon")
CORRECTIONS = ("holm", "fdr_bh")
MIN_PAIRS = 3
# Lower bound of the Wilcoxon signed-rank test's efficiency relative to the t-test (Hodges & Lehmann 1956):
# it never needs more than 1/0.864 times the t-test's sample size, whatever the distribution.
WILCOXON_ARE = 0.864

Statistic = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison a - b over n seeds; differences are in the metric's units (accuracy, not points)."""

    n: int
    test: str  # "t", "wilcoxon", or "none" when the difference is the same on every seed
    statistic: float  # T, or W (sum of the smaller signed ranks)
    p: float  # two-sided, uncorrected; nan when untestable
    normality_p: float  # Shapiro-Wilk on the differences (nan when constant)
    mean_diff: float
    diff_ci: tuple[float, float]  # BCa bootstrap interval of the mean difference
    effect_name: str  # "hedges_g" (t) or "rank_biserial" (wilcoxon)
    effect: float
    effect_ci: tuple[float, float]
    p_superior: float  # P(a > b on a random seed), ties count half
    p_superior_ci: tuple[float, float]  # percentile bootstrap (the statistic is discrete)
    min_p: float  # the smallest p this test can give with n pairs (0 for the t-test)
    constant: bool  # the difference is identical on every seed, so seeds carry no evidence


@dataclass(frozen=True)
class OmnibusResult:
    """A test of 'no difference among k groups' (conditions within seeds, or families)."""

    test: str  # "rm_anova", "friedman", "anova" or "kruskal"
    n: int  # seeds (repeated) or observations (between)
    k: int  # groups
    statistic: float  # F, Q or H
    df: tuple[float, ...]
    p: float  # Greenhouse-Geisser corrected for rm_anova with k > 2
    effect_name: str  # "ng2", "kendall_w", "np2" or "epsilon2"
    effect: float


def differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b for two equal-length 1-D arrays of finite paired scores, at least MIN_PAIRS long."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise StatsError(f"paired scores must be two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    if a.size < MIN_PAIRS:
        raise StatsError(f"a paired comparison needs at least {MIN_PAIRS} seeds, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise StatsError("paired scores contain NaN or infinity; drop unfinished runs first")
    return np.round(a - b, 12)  # exact ties and zeros despite float noise in k/N accuracies


def is_constant(d: np.ndarray) -> bool:
    """True when every difference is the same (up to float noise): seeds then carry no evidence."""
    return bool(np.ptp(d) <= 1e-9)


def hedges_g(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Hedges' g of paired differences d (g_z: mean / sd, times the small-sample correction J)."""
    n = d.shape[axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        return d.mean(axis=axis) / d.std(axis=axis, ddof=1) * (1 - 3 / (4 * (n - 1) - 1))


def rank_biserial(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Matched-pairs rank-biserial correlation (Kerby 2014) of differences d; zeros dropped, as in pingouin."""
    d = np.moveaxis(np.asarray(d, dtype=float), axis, -1)
    zeros = (d == 0).sum(axis=-1, keepdims=True)
    ranks = scipy.stats.rankdata(np.abs(d), axis=-1) - zeros  # zeros tie lowest: shift the others down
    plus, minus = (ranks * (d > 0)).sum(axis=-1), (ranks * (d < 0)).sum(axis=-1)
    total = plus + minus
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (plus - minus) / np.where(total > 0, total, 1), 0.0)


def prob_superior(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probability that a beats b on a random seed, ties counting half."""
    return (d > 0).mean(axis=axis) + 0.5 * (d == 0).mean(axis=axis)


def bootstrap_ci(
    x: np.ndarray, statistic: Statistic, *, n_boot: int, ci: float, seed: int, method: str = "BCa"
) -> tuple[float, float]:
    """Seeded bootstrap interval of statistic(x) for 1-D x; BCa falls back to percentile when degenerate."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise StatsError(f"bootstrap needs a 1-D array of at least 2 values, got shape {x.shape}")
    if n_boot < 100 or not 0 < ci < 1:
        raise StatsError(f"bootstrap needs n_boot >= 100 and 0 < ci < 1, got {n_boot} and {ci}")
    value = float(statistic(x, -1))
    if is_constant(x):
        return value, value
    for how in dict.fromkeys((method, "percentile")):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = scipy.stats.bootstrap((x,), statistic, n_resamples=n_boot, confidence_level=ci, method=how,
                                        vectorized=True, rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            return low, high
    return value, value  # every resample gave the same value (e.g. a win on every seed)


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with n non-zero pairs."""
    return min(1.0, 2.0 / 2.0**n) if n > 0 else 1.0


def min_wilcoxon_seeds(alpha: float) -> int:
    """The fewest non-zero pairs for which the exact Wilcoxon test can give p < alpha at all."""
    n = 1
    while min_wilcoxon_p(n) >= alpha:
        n += 1
    return n


def _shapiro(d: np.ndarray) -> float:
    if is_constant(d):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(scipy.stats.shapiro(d).pvalue)


def choose_test(d: np.ndarray, test: str, alpha: float) -> str:
    """'t' when the differences look normal (Shapiro-Wilk p >= alpha), else 'wilcoxon'; forced unless 'auto'."""
    if test not in TESTS:
        raise StatsError(f"unknown test '{test}'; choose one of {', '.join(TESTS)}")
    if test != "auto":
        return test
    normality = _shapiro(d)
    return "t" if not normality < alpha else "wilcoxon"


def _run_test(d: np.ndarray, test: str) -> tuple[float, float, float]:
    """(statistic, p, effect) of the paired test on the differences, called as pingouin.ttest / pingouin.wilcoxon
    call scipy (tests check equality with pingouin; its DataFrame wrapping cost 8 ms a comparison)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if test == "t":
            res = scipy.stats.ttest_1samp(d, 0.0)
            return float(res.statistic), float(res.pvalue), float(hedges_g(d))
        res = scipy.stats.wilcoxon(d, correction=True)
        return float(res.statistic), float(res.pvalue), float(rank_biserial(d))


def paired_test(
    a: np.ndarray, b: np.ndarray, *, test: str = "auto", alpha: float = 0.05, n_boot: int = 10000,
    ci: float = 0.95, seed: int = 0,
) -> PairedResult:
    """Test a - b over seeds (a, b: shape [n_seeds], paired by index), with effect size and bootstrap CIs."""
    d = differences(a, b)
    chosen = choose_test(d, test, alpha)
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    diff_ci = bootstrap_ci(d, lambda x, axis: x.mean(axis=axis), **boot)
    sup = float(prob_superior(d))
    sup_ci = bootstrap_ci(d, prob_superior, method="percentile", **boot)
    effect_name = "hedges_g" if chosen == "t" else "rank_biserial"
    nonzero = int((d != 0).sum())
    min_p = 0.0 if chosen == "t" else min_wilcoxon_p(nonzero)
    if is_constant(d):
        return PairedResult(d.size, "none", math.nan, math.nan, math.nan, float(d[0]), diff_ci, effect_name,
                            math.nan, (math.nan, math.nan), sup, sup_ci, min_p, True)
    statistic, p, effect = _run_test(d, chosen)
    effect_fn = hedges_g if chosen == "t" else rank_biserial
    effect_ci = bootstrap_ci(d, effect_fn, **boot)
    return PairedResult(d.size, chosen, statistic, p, _shapiro(d), float(d.mean()), diff_ci, effect_name,
                        effect, effect_ci, sup, sup_ci, min_p, False)


def t_power(effect: float, n: np.ndarray, alpha: float) -> np.ndarray:
    """Two-sided paired t-test power for a standardized effect d_z at each sample size in n (noncentral t)."""
    n = np.asarray(n, dtype=float)
    df, nc = n - 1, abs(effect) * np.sqrt(n)
    crit = scipy.stats.t.ppf(1 - alpha / 2, df)
    # 1 - sf rather than cdf: scipy's nct.cdf returns NaN far in the tail (pingouin does the same)
    return scipy.stats.nct.sf(crit, df, nc) + (1 - scipy.stats.nct.sf(-crit, df, nc))


def seeds_needed(effect: float, *, alpha: float, power: float = 0.8, test: str = "t") -> float:
    """Seeds needed to detect a standardized paired effect d_z with this power; inf when effect is 0.

    For the t-test: the smallest n whose exact power (noncentral t, as pingouin.power_ttest with
    contrast='paired') reaches the target, searched around Guenther's normal approximation in one vectorised
    call. For Wilcoxon it is divided by the worst-case efficiency WILCOXON_ARE and raised to the fewest seeds
    that can reach p < alpha at all.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise StatsError(f"power analysis needs 0 < alpha < 1 and 0 < power < 1, got {alpha} and {power}")
    if math.isnan(effect) or effect == 0:
        return math.inf
    z = scipy.stats.norm.ppf(1 - alpha / 2)
    guess = ((z + scipy.stats.norm.ppf(power)) / abs(effect)) ** 2 + z**2 / 2
    if guess > 1e9:
        return math.inf
    low = max(2, int(guess) - 8)
    while True:
        sizes = np.arange(low, low + 24)
        ok = np.nonzero(t_power(effect, sizes, alpha) >= power)[0]
        if ok.size and (ok[0] > 0 or low == 2):
            n = int(sizes[ok[0]])
            break
        low = max(2, low - 20) if ok.size else low + 20
    if test == "wilcoxon":
        return float(max(math.ceil(n / WILCOXON_ARE), min_wilcoxon_seeds(alpha)))
    return float(n)


def correct(p: np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiple-comparison corrected p-values (pingouin.multicomp); NaN entries stay NaN and do not count."""
    import pingouin as pg

    if method not in CORRECTIONS:
        raise StatsError(f"unknown correction '{method}'; choose one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise StatsError(f"p-values must be a 1-D array, got shape {p.shape}")
    if np.isnan(p).all():
        return p.copy()
    return np.asarray(pg.multicomp(p, method=method)[1], dtype=float)


def repeated_omnibus(scores: np.ndarray, *, parametric: bool) -> OmnibusResult:
    """Conditions within seeds: scores has shape [n_seeds, k_conditions], complete; rm-ANOVA or Friedman.

    The same numbers as pingouin.rm_anova (F, Greenhouse-Geisser p, generalized eta squared) and
    pingouin.friedman (Q, Kendall's W), computed on the array directly: pingouin's long-format pivoting
    cost 35 ms a cell, most of the grid analysis.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < MIN_PAIRS or scores.shape[1] < 2 or not np.isfinite(scores).all():
        raise StatsError(f"omnibus needs a finite [seeds >= {MIN_PAIRS}, conditions >= 2] array, got {scores.shape}")
    n, k = scores.shape
    if not parametric:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q, p = scipy.stats.friedmanchisquare(*scores.T) if k > 2 else _friedman2(scores)
        return OmnibusResult("friedman", n, k, float(q), (float(k - 1),), float(p), "kendall_w", q / (n * (k - 1)))
    grand = scores.mean()
    ss_cond = n * ((scores.mean(0) - grand) ** 2).sum()
    ss_subj = k * ((scores.mean(1) - grand) ** 2).sum()
    ss_err = ((scores - grand) ** 2).sum() - ss_cond - ss_subj
    df1, df2 = k - 1, (n - 1) * (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss_cond / df1) / (ss_err / df2)
        cov = np.cov(scores, rowvar=False).reshape(k, k)
        centred = cov - cov.mean(0) - cov.mean(1, keepdims=True) + cov.mean()
        eps = min(1.0, np.trace(centred) ** 2 / (df1 * (centred**2).sum())) if k > 2 else 1.0
    p = float(scipy.stats.f.sf(f, eps * df1, eps * df2))
    return OmnibusResult("rm_anova", n, k, float(f), (float(df1), float(df2)), p, "ng2",
                         float(ss_cond / (ss_cond + ss_subj + ss_err)))


def _friedman2(scores: np.ndarray) -> tuple[float, float]:
    """Friedman's Q for two conditions (scipy wants three): within-seed ranks, tie-corrected, chi2 with 1 df."""
    n, k = scores.shape
    ranks = scipy.stats.rankdata(scores, axis=1)
    q = 12 / (n * k * (k + 1)) * (ranks.sum(0) ** 2).sum() - 3 * n * (k + 1)
    ties = sum((c**3 - c).sum() for c in (np.unique(r, return_counts=True)[1] for r in scores))
    q = q / (1 - ties / (n * (k**3 - k)))
    return q, scipy.stats.chi2.sf(q, k - 1)


def between_omnibus(groups: list[np.ndarray], *, parametric: bool) -> OmnibusResult:
    """Groups of independent values (e.g. paired differences per family): one-way ANOVA or Kruskal-Wallis."""
    arrays = [np.asarray(g, dtype=float) for g in groups]
    if len(arrays) < 2 or any(g.ndim != 1 or g.size < 2 or not np.isfinite(g).all() for g in arrays):
        raise StatsError("a between-groups omnibus needs >= 2 finite 1-D groups of >= 2 values each")
    n, k = sum(g.size for g in arrays), len(arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if parametric:
            res = scipy.stats.f_oneway(*arrays)
            grand = np.concatenate(arrays).mean()
            ss_b = sum(g.size * (g.mean() - grand) ** 2 for g in arrays)
            ss_w = sum(((g - g.mean()) ** 2).sum() for g in arrays)
            return OmnibusResult("anova", n, k, float(res.statistic), (float(k - 1), float(n - k)),
                                 float(res.pvalue), "np2", float(ss_b / (ss_b + ss_w)))
        res = scipy.stats.kruskal(*arrays)
    h = float(res.statistic)
    return OmnibusResult("kruskal", n, k, h, (float(k - 1),), float(res.pvalue), "epsilon2", h / (n - 1))


def looks_normal(groups: list[np.ndarray], alpha: float) -> bool:
    """True unless Shapiro-Wilk rejects normality (p < alpha) for one of the groups."""
    return not any(_shapiro(np.asarray(g, dtype=float)) < alpha for g in groups if np.size(g) >= 3)
