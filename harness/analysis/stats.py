"""Seed-level statistics over paired scores: the primary test, t intervals, effect sizes, power, corrections.

Every function takes plain arrays with documented shapes, validates them (raising StatsError, never asserting)
and returns floats or frozen results, so that the grid analysis stays bookkeeping only. Scores are paired by
receiving seed: ``a[..., i]`` and ``b[..., i]`` come from the same seed (same data order and init stream); a
leading axis, when present, is the originating module (origin seed), a random factor crossed with the seeds.
The test is fixed before the data are seen (docs/statistics.md): the paired t-test with its t interval, or the
exact sign-flip permutation test on request; no pretest picks one. Example-level statistics (McNemar, bootstraps
over examples) live in harness/analysis/resample.py. tests/test_stats.py checks every number against scipy/statsmodels.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats

from harness.errors import StatsError

TESTS = ("t", "signflip")
CORRECTIONS = ("holm", "fdr_bh")
MIN_PAIRS = 3
EXACT_FLIPS = 16   # up to 2^16 sign patterns are enumerated; beyond, 2^16 seeded random flips


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison a - b over n receiving seeds (x n_origins originating modules), in metric units."""

    n: int
    test: str  # "t", "signflip", or "none" when the difference is the same on every seed and origin
    statistic: float  # t, or the mean difference for the sign-flip test
    df: float  # degrees of freedom of the t (Satterthwaite with several origins); nan for signflip
    p: float  # two-sided, uncorrected; nan when untestable
    mean_diff: float
    diff_ci: tuple[float, float]  # t interval of the mean difference; nan when constant (never a point)
    effect_name: str  # "d_av": mean difference / mean of the two conditions' SDs (Lakens 2013)
    effect: float
    p_superior: float  # share of seeds on which a beats b, ties count half
    p_superior_ci: tuple[float, float]  # Clopper-Pearson
    min_p: float  # the smallest p this test can give here (0 for the t-test, 2/2^n for sign flips)
    constant: bool  # the difference is identical on every seed and origin: seeds carry no evidence
    n_origins: int = 1
    sd: float = math.nan  # SD per seed implied by the standard error (the plain SD with one origin), for power


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
    """a - b as [origins, seeds]: a and b are [seeds] or [origins, seeds] finite scores, b broadcast over origins."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    rows_ok = a.ndim == b.ndim == 2 and (a.shape[0] == b.shape[0] or 1 in (a.shape[0], b.shape[0]))
    if not rows_ok or a.shape[1] != b.shape[1]:
        raise StatsError(f"paired scores must be [seeds] or [origins, seeds] of one seed count, got shapes "
                         f"{a.shape} and {b.shape}")
    if a.shape[1] < MIN_PAIRS:
        raise StatsError(f"a paired comparison needs at least {MIN_PAIRS} seeds, got {a.shape[1]}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise StatsError("paired scores contain NaN or infinity; drop unfinished runs first")
    return np.round(a - b, 12)  # exact ties and zeros despite float noise in k/N accuracies


def is_constant(d: np.ndarray) -> bool:
    """True when every difference is the same (up to float noise): seeds then carry no evidence."""
    return bool(np.ptp(d) <= 1e-9)


def d_av(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d_av (Lakens 2013): mean(a - b) / ((sd_a + sd_b) / 2) over all scored runs; nan if both sds are 0."""
    a, b = np.ravel(np.asarray(a, float)), np.ravel(np.asarray(b, float))
    sd = (a.std(ddof=1) + b.std(ddof=1)) / 2
    return float((a.mean() - b.mean()) / sd) if sd > 1e-12 else math.nan


def prob_superior(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probability that a beats b on a random seed, ties counting half."""
    return (d > 0).mean(axis=axis) + 0.5 * (d == 0).mean(axis=axis)


def clopper_pearson(k: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes of n (a tie counted half gives k + 0.5: beta quantiles still apply)."""
    if n < 1 or not 0 <= k <= n:
        raise StatsError(f"Clopper-Pearson needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    tail = (1 - ci) / 2
    low = 0.0 if k <= 0 else float(scipy.stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k >= n else float(scipy.stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def crossed_t(d: np.ndarray) -> tuple[float, float, float]:
    """(mean, standard error, df) of the mean of d [origins, seeds], origins and seeds both random.

    One origin: the paired t (se = sd / sqrt(n), df = n - 1). Several: the two-way crossed random-effects
    ANOVA without replication; var(mean) = s2_origin / O + s2_seed / S + s2_resid / (O S), components from the
    mean squares floored at 0, df by Satterthwaite.
    """
    o, s = d.shape
    if o == 1:
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(s)), float(s - 1)
    grand = d.mean()
    ms_o = s * ((d.mean(1) - grand) ** 2).sum() / (o - 1)
    ms_s = o * ((d.mean(0) - grand) ** 2).sum() / (s - 1)
    resid = d - d.mean(1, keepdims=True) - d.mean(0, keepdims=True) + grand
    ms_e = (resid**2).sum() / ((o - 1) * (s - 1))
    c_e = 1.0 - (ms_o > ms_e) - (ms_s > ms_e)   # each component kept subtracts the residual mean square once
    terms = [(ms_e, (o - 1) * (s - 1), c_e), (ms_o, o - 1, float(ms_o > ms_e)), (ms_s, s - 1, float(ms_s > ms_e))]
    total = sum(c * ms for ms, _, c in terms)
    denom = sum((c * ms) ** 2 / df for ms, df, c in terms)
    df = total**2 / denom if denom > 0 else float(o * s - 1)
    return float(grand), float(math.sqrt(max(total, 0.0) / (o * s))), float(df)


def signflip_p(d: np.ndarray, *, seed: int = 0) -> float:
    """Two-sided exact sign-flip permutation p of mean(d) = 0 for 1-D d (its floor is 2 / 2^nonzero)."""
    n = d.size
    if n <= EXACT_FLIPS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(2**EXACT_FLIPS, n))
        signs[0] = 1.0
    means = signs @ d / n
    return float(np.mean(np.abs(means) >= abs(d.mean()) - 1e-12))


def paired_test(a: np.ndarray, b: np.ndarray, *, test: str = "t", ci: float = 0.95, seed: int = 0) -> PairedResult:
    """Test a - b over seeds; a, b: [seeds] or [origins, seeds] (b may have one row, e.g. a condition with no
    originating module). The seed-level numbers; the example-level ones come from harness.analysis.resample."""
    if test not in TESTS:
        raise StatsError(f"unknown test '{test}'; choose one of {', '.join(TESTS)}")
    d = differences(a, b)
    per_seed = d.mean(0)
    n = per_seed.size
    sup = float(prob_superior(per_seed))
    sup_ci = clopper_pearson(sup * n, n, ci)
    effect = d_av(a, b)
    nonzero = int((per_seed != 0).sum())
    min_p = 0.0 if test == "t" else min(1.0, 2.0 / 2.0**nonzero)
    common = {"n": n, "effect_name": "d_av", "effect": effect, "p_superior": sup, "p_superior_ci": sup_ci,
              "min_p": min_p, "n_origins": d.shape[0], "sd": float(per_seed.std(ddof=1))}
    if is_constant(d):
        return PairedResult(test="none", statistic=math.nan, df=math.nan, p=math.nan, mean_diff=float(d.flat[0]),
                            diff_ci=(math.nan, math.nan), constant=True, **common)
    mean, se, df = crossed_t(d)
    common["sd"] = se * math.sqrt(n)   # the per-seed SD giving this standard error (origins' part included)
    half = scipy.stats.t.ppf(0.5 + ci / 2, df) * se
    t = mean / se if se > 0 else math.copysign(math.inf, mean)
    if test == "t":
        p, stat = float(2 * scipy.stats.t.sf(abs(t), df)), t
    else:
        p, stat, df = signflip_p(per_seed, seed=seed), mean, math.nan
    return PairedResult(test=test, statistic=float(stat), df=df, p=p, mean_diff=mean,
                        diff_ci=(mean - half, mean + half), constant=False, **common)


def t_power(effect: float, n: np.ndarray, alpha: float) -> np.ndarray:
    """Two-sided paired t-test power for a standardized effect d_z at each sample size in n (noncentral t)."""
    n = np.asarray(n, dtype=float)
    df, nc = n - 1, abs(effect) * np.sqrt(n)
    crit = scipy.stats.t.ppf(1 - alpha / 2, df)
    # 1 - sf rather than cdf: scipy's nct.cdf returns NaN far in the tail (pingouin does the same)
    return scipy.stats.nct.sf(crit, df, nc) + (1 - scipy.stats.nct.sf(-crit, df, nc))


def seeds_needed(effect: float, *, alpha: float, power: float = 0.8, test: str = "t") -> float:
    """Seeds needed to detect a standardized paired effect d_z with this power; inf when effect is 0.

    The smallest n whose exact power (noncentral t, as pingouin.power_ttest with contrast='paired') reaches
    the target, searched around Guenther's normal approximation in one vectorised call; for the sign-flip
    test it is raised to the fewest seeds whose floor 2/2^n lies below alpha.
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
    return float(max(n, min_signflip_seeds(alpha)) if test == "signflip" else n)


def min_signflip_seeds(alpha: float) -> int:
    """The fewest non-zero pairs for which an exact sign-flip (or Wilcoxon) test can give p < alpha at all."""
    return max(1, math.floor(math.log2(2 / alpha)) + 1)


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


def replicability_count(p_one_sided: np.ndarray, alpha: float) -> int:
    """How many of n cells show the effect, controlling the error at alpha (Dror et al. 2017): the largest u whose
    Bonferroni partial-conjunction p, max over j <= u of (n - j + 1) p_(j), is below alpha (NaN p never count)."""
    p = np.sort(np.asarray(p_one_sided, dtype=float)[~np.isnan(p_one_sided)])
    n = p.size
    if n == 0:
        return 0
    partial = np.maximum.accumulate((n - np.arange(n)) * p)
    return int((partial <= alpha).sum())


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
