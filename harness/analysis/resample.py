"""Example-level statistics: the hierarchical bootstrap (origins, seeds, then shared examples), the exact
McNemar test for deterministic comparisons, its power, and the rliable-style stratified aggregate.

Seeds alone miss the noise of a finite evaluation set: at budget 0 every condition can be deterministic, so the
seed-level difference is constant, yet 500 examples carry about +-4.5 points of sampling error. These functions
take per-example correctness arrays, [origins, seeds, examples] (bool or 0/1), paired by seed and by example.
Resampling is vectorised: example weights are one [n_boot, n_examples] multinomial matrix shared by every
comparison on the same evaluation set (common random numbers), so one matrix product per comparison does the
work (Bouthillier et al. 2021; Agarwal et al. 2021, whose rliable does the same in Python loops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats

from harness.errors import StatsError


@dataclass(frozen=True)
class ExampleResult:
    """a - b with uncertainty over examples (and seeds, and origins): all in metric units."""

    n_examples: int
    mean_diff: float
    ci: tuple[float, float]  # percentile interval of the hierarchical bootstrap
    p: float  # two-sided bootstrap p: twice the smaller tail of the resampled differences around 0
    deterministic: bool  # a and b gave the same answers on every seed and origin
    mcnemar_p: float  # exact McNemar on the shared examples (deterministic comparisons only, else nan)
    a_only: int  # examples a gets right and b wrong (deterministic only, else -1)
    b_only: int  # examples b gets right and a wrong
    power: float  # McNemar power for the target difference at this many examples (deterministic only)


def counts(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_items] float32 resampling counts: how often each item is drawn in each resample."""
    idx = rng.integers(0, n_items, size=(n_boot, n_items)) + (np.arange(n_boot) * n_items)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items).astype(np.float32)


def example_weights(n_examples: int, n_boot: int, seed: int) -> np.ndarray:
    """The shared example-resampling matrix for one evaluation set."""
    if n_examples < 2 or n_boot < 100:
        raise StatsError(f"an example bootstrap needs >= 2 examples and n_boot >= 100, got {n_examples}, {n_boot}")
    return counts(n_examples, n_boot, np.random.default_rng(seed))


def _as_runs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, None]
    elif x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise StatsError(f"per-example results must be [examples], [seeds, examples] or [origins, seeds, examples], "
                         f"got shape {x.shape}")
    return x.astype(np.float32)


def mcnemar(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """(a_only, b_only, exact two-sided p) for two 1-D correctness vectors over the same examples."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise StatsError(f"McNemar needs two correctness vectors of one length, got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    if a_only + b_only == 0:
        return 0, 0, 1.0
    return a_only, b_only, float(scipy.stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)


def mcnemar_power(delta: float, discordant: float, n: int, alpha: float) -> float:
    """Power of the exact McNemar test to detect a difference delta (metric units) on n examples when a share
    `discordant` of them differ between the conditions (raised to delta if smaller), computed exactly."""
    if not 0 < delta <= 1 or n < 1:
        raise StatsError(f"McNemar power needs 0 < delta <= 1 and n >= 1, got {delta}, {n}")
    pi = min(1.0, max(discordant, delta))
    q = (pi + delta) / (2 * pi)   # share of the discordant examples that favour a
    m = np.arange(1, n + 1)
    c = scipy.stats.binom.ppf(alpha / 2, m, 0.5)   # reject when min(k, m - k) <= c_m (exact two-sided level)
    c = np.where(2 * scipy.stats.binom.cdf(c, m, 0.5) < alpha, c, c - 1)
    reject = np.where(c >= 0, scipy.stats.binom.cdf(c, m, q) + scipy.stats.binom.sf(m - c - 1, m, q), 0.0)
    return float(np.minimum(reject, 1.0) @ scipy.stats.binom.pmf(m, n, pi))


def hierarchical_bootstrap(a: np.ndarray, b: np.ndarray, weights: np.ndarray, *, ci: float, seed: int,
                           delta: float = 0.02, alpha: float = 0.05) -> ExampleResult:
    """a - b resampling origins, then seeds, then the shared examples (weights from example_weights).

    a, b: per-example correctness, [origins, seeds, examples]; b may have one origin row (broadcast). The
    statistic is the mean of a - b over all three levels; the interval is the percentile interval.
    """
    a, b = _as_runs(a), _as_runs(b)
    return from_sums(a, b, resampled_sums(a, weights), resampled_sums(b, weights), ci=ci, seed=seed, delta=delta,
                     alpha=alpha)


def resampled_sums(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[origins, seeds, n_boot] sums of correctness x [origins, seeds, examples] under each example resample.
    Linear in x, so a grid computes it once per run (one matrix product) and differences it per comparison."""
    x = _as_runs(x)
    if x.shape[2] != weights.shape[1]:
        raise StatsError(f"example weights are for {weights.shape[1]} examples, the results have {x.shape[2]}")
    o, s, n = x.shape
    return (x.reshape(o * s, n) @ weights.T).reshape(o, s, weights.shape[0])


def from_sums(a: np.ndarray, b: np.ndarray, ya: np.ndarray, yb: np.ndarray, *, ci: float, seed: int,
              delta: float = 0.02, alpha: float = 0.05) -> ExampleResult:
    """The hierarchical bootstrap of a - b from the runs' resampled sums (see resampled_sums)."""
    a, b = _as_runs(a), _as_runs(b)
    if a.shape[1:] != b.shape[1:] or (1 not in (a.shape[0], b.shape[0]) and a.shape[0] != b.shape[0]):
        raise StatsError(f"per-example results of a {a.shape} and b {b.shape} are not paired by seed and example")
    y = ya - yb
    o, s, n_boot = y.shape
    n = a.shape[2]
    rng = np.random.default_rng(seed)
    seed_w = counts(s, n_boot, rng) / s
    if o > 1:
        stat = np.einsum("bo,bs,osb->b", counts(o, n_boot, rng) / o, seed_w, y) / n
    else:
        stat = np.einsum("bs,sb->b", seed_w, y[0]) / n
    tail = (1 - ci) / 2
    low, high = np.quantile(stat, [tail, 1 - tail])
    le, ge = int((stat <= 0).sum()), int((stat >= 0).sum())
    mean = float(a.mean() - b.mean()) if a.shape[0] == b.shape[0] else float((a - b).mean())
    p = min(1.0, 2 * (min(le, ge) + 1) / (n_boot + 1)) if np.ptp(stat) > 0 or mean != 0 else 1.0
    deterministic = bool((a == a[:1, :1]).all() and (b == b[:1, :1]).all())
    a_only, b_only, mc_p, power = -1, -1, math.nan, math.nan
    if deterministic:
        a_only, b_only, mc_p = mcnemar(a[0, 0] > 0.5, b[0, 0] > 0.5)
        power = mcnemar_power(delta, (a_only + b_only) / n, n, alpha)
    return ExampleResult(n, mean, (float(low), float(high)), p, deterministic, mc_p, a_only, b_only, power)


@dataclass(frozen=True)
class Aggregate:
    """a - b over many cells at once (rliable-style): mean difference and probability of improvement."""

    cells: int
    mean_diff: float
    ci: tuple[float, float]  # stratified bootstrap (seeds resampled within each cell), percentile
    p_improvement: float  # mean over cells of P(a's score > b's score on random runs), ties half
    p_improvement_ci: tuple[float, float]  # nan when every resample agrees (e.g. every a run beats every b run)


def stratified_aggregate(cells: list[tuple[np.ndarray, np.ndarray]], *, n_boot: int, ci: float,
                         seed: int) -> Aggregate:
    """cells: per cell, (a [seeds], b [seeds]) paired by seed. Seeds are resampled within each cell (the strata),
    pairs kept together; the probability of improvement compares every a run with every b run (Agarwal et al.)."""
    if not cells:
        raise StatsError("a stratified aggregate needs at least one cell")
    rng = np.random.default_rng(seed)
    diffs, pois, diff0, poi0 = [], [], [], []
    for a, b in cells:
        a, b = np.asarray(a, float), np.asarray(b, float)
        if a.shape != b.shape or a.ndim != 1 or a.size < 2:
            raise StatsError(f"each cell needs paired 1-D scores of >= 2 seeds, got {a.shape} and {b.shape}")
        idx = rng.integers(0, a.size, size=(n_boot, a.size))
        ra, rb = a[idx], b[idx]
        diffs.append((ra - rb).mean(1))
        pois.append(_poi(ra, rb))
        diff0.append((a - b).mean())
        poi0.append(float(_poi(a[None], b[None])[0]))
    tail = (1 - ci) / 2
    boot_d, boot_p = np.mean(diffs, axis=0), np.mean(pois, axis=0)
    d_ci, p_ci = (_percentile(x, tail) for x in (boot_d, boot_p))
    return Aggregate(len(cells), float(np.mean(diff0)), d_ci, float(np.mean(poi0)), p_ci)


def _percentile(boot: np.ndarray, tail: float) -> tuple[float, float]:
    """Percentile interval; nan when every resample agrees (a point is never shown as an interval)."""
    if np.ptp(boot) <= 1e-12:
        return math.nan, math.nan
    low, high = np.quantile(boot, [tail, 1 - tail])
    return float(low), float(high)


def _poi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n_boot] P(X > Y) from [n_boot, n] resampled a and b runs, ties half (the Mann-Whitney U / n^2)."""
    gt = (a[:, :, None] > b[:, None, :]).mean((1, 2))
    eq = (a[:, :, None] == b[:, None, :]).mean((1, 2))
    return gt + 0.5 * eq
