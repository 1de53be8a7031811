"""harness.analysis.stats against scipy, pingouin and hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from harness.analysis import stats
from harness.errors import StatsError

RNG = np.random.default_rng(7)
A = 0.80 + RNG.normal(0, 0.02, 8)
B = A - 0.03 + RNG.normal(0, 0.01, 8)


def test_t_test_matches_scipy_ttest_rel():
    res = stats.paired_test(A, B, test="t", n_boot=1000)
    ref = scipy.stats.ttest_rel(A, B)
    assert res.test == "t" and res.n == 8
    assert res.statistic == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    assert res.mean_diff == pytest.approx(np.mean(A - B))


def test_wilcoxon_matches_scipy_and_the_exact_minimum():
    res = stats.paired_test(A, B, test="wilcoxon", n_boot=1000)
    ref = scipy.stats.wilcoxon(A, B)
    assert res.statistic == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    wins = stats.paired_test(np.arange(6) + 1.0, np.zeros(6) + 0.5, test="wilcoxon", n_boot=1000)
    assert wins.p == pytest.approx(2 / 2**6) and wins.min_p == pytest.approx(2 / 2**6)  # 6 wins of 6
    assert wins.effect == 1.0 and wins.p_superior == 1.0


def test_hedges_g_by_hand_and_against_pingouin():
    import pingouin as pg

    d = np.array([1.0, 2.0, 3.0])  # mean 2, sd 1: d_z = 2, J = 1 - 3 / (4 * 2 - 1) = 4 / 7
    assert stats.hedges_g(d) == pytest.approx(8 / 7)
    assert stats.hedges_g(A - B) == pytest.approx(pg.compute_effsize(A - B, 0, eftype="hedges"))
    rows = np.stack([A - B, d[[0, 1, 2, 0, 1, 2, 0, 1]]])
    assert np.allclose(stats.hedges_g(rows, axis=-1), [stats.hedges_g(r) for r in rows])


def test_rank_biserial_by_hand_zeros_dropped_and_against_pingouin():
    import pingouin as pg

    assert stats.rank_biserial(np.array([1.0, -2.0, 3.0, 4.0])) == pytest.approx(0.6)  # (8 - 2) / 10
    assert stats.rank_biserial(np.array([0.0, 1.0, -2.0, 3.0, 4.0])) == pytest.approx(0.6)
    assert stats.rank_biserial(A - B) == pytest.approx(pg.wilcoxon(A, B)["RBC"].iloc[0])
    rows = np.array([[0.0, 1.0, -2.0, 3.0, 4.0], [1.0, 1.0, -1.0, 0.0, 0.0]])
    assert np.allclose(stats.rank_biserial(rows), [stats.rank_biserial(r) for r in rows])
    assert stats.rank_biserial(np.zeros(4)) == 0.0


def test_prob_superior_counts_ties_half():
    assert stats.prob_superior(np.array([1.0, -1.0, 0.0, 2.0])) == pytest.approx(0.625)


def test_auto_picks_wilcoxon_for_skewed_differences_and_t_for_normal_ones():
    skewed = np.array([0.0] * 9 + [0.5]) + np.linspace(0, 0.001, 10)
    assert stats.choose_test(skewed, "auto", 0.05) == "wilcoxon"
    assert stats.choose_test(RNG.normal(size=30), "auto", 0.05) == "t"
    assert stats.choose_test(skewed, "t", 0.05) == "t"
    with pytest.raises(StatsError):
        stats.choose_test(skewed, "welch", 0.05)


def test_bootstrap_is_seeded_and_close_to_pingouin_bca():
    import pingouin as pg

    d = A - B
    mean = lambda x, axis: x.mean(axis=axis)  # noqa: E731
    first = stats.bootstrap_ci(d, mean, n_boot=10000, ci=0.95, seed=3)
    assert first == stats.bootstrap_ci(d, mean, n_boot=10000, ci=0.95, seed=3)
    assert first != stats.bootstrap_ci(d, mean, n_boot=10000, ci=0.95, seed=4)
    ref = pg.compute_bootci(d, func="mean", n_boot=10000, seed=3, decimals=10)
    width = ref[1] - ref[0]
    assert first[0] < d.mean() < first[1]
    assert abs(first[0] - ref[0]) < 0.1 * width and abs(first[1] - ref[1]) < 0.1 * width
    assert stats.bootstrap_ci(np.full(5, 0.02), mean, n_boot=1000, ci=0.95, seed=0) == (0.02, 0.02)


def test_constant_difference_is_not_tested():
    res = stats.paired_test(A, A - 0.01, n_boot=1000)
    assert res.constant and res.test == "none" and math.isnan(res.p)
    assert res.mean_diff == pytest.approx(0.01) and res.diff_ci == pytest.approx((0.01, 0.01))


def test_wilcoxon_design_limits():
    assert stats.min_wilcoxon_p(5) == pytest.approx(0.0625)
    assert stats.min_wilcoxon_seeds(0.05) == 6
    assert stats.min_wilcoxon_seeds(0.05 / 3) == 7  # Holm over 3 pairs


@pytest.mark.parametrize("d", [0.3, 0.8, 1.7, 3.0])
@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_seeds_needed_matches_pingouin_power_ttest(d, alpha):
    import pingouin as pg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pg.power_ttest(d=d, n=2, alpha=alpha, contrast="paired") >= 0.8:
            ref = 2
        else:
            ref = math.ceil(pg.power_ttest(d=d, power=0.8, alpha=alpha, contrast="paired"))
    assert stats.seeds_needed(d, alpha=alpha) == ref
    wil = stats.seeds_needed(d, alpha=alpha, test="wilcoxon")
    assert wil >= max(ref, stats.min_wilcoxon_seeds(alpha))


def test_seeds_needed_edge_cases():
    assert stats.seeds_needed(0.0, alpha=0.05) == math.inf
    assert stats.seeds_needed(0.5, alpha=0.05) == 34  # the textbook d = 0.5 paired case
    with pytest.raises(StatsError):
        stats.seeds_needed(0.5, alpha=1.5)


def test_corrections_by_hand_and_nan_kept():
    p = np.array([0.01, 0.02, 0.03])
    assert stats.correct(p, "holm") == pytest.approx([0.03, 0.04, 0.04])
    assert stats.correct(p, "fdr_bh") == pytest.approx([0.03, 0.03, 0.03])
    out = stats.correct(np.array([0.01, np.nan, 0.03]), "holm")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.03)
    with pytest.raises(StatsError):
        stats.correct(p, "bonferroni")


def test_paired_tests_equal_pingouin():
    import pingouin as pg

    t = stats.paired_test(A, B, test="t", n_boot=1000)
    ref = pg.ttest(A, B, paired=True).iloc[0]
    assert t.statistic == pytest.approx(ref["T"]) and t.p == pytest.approx(ref["p_val"])
    w = stats.paired_test(A, B, test="wilcoxon", n_boot=1000)
    ref = pg.wilcoxon(A, B).iloc[0]
    assert w.statistic == pytest.approx(ref["W_val"]) and w.p == pytest.approx(ref["p_val"])
    assert w.effect == pytest.approx(ref["RBC"])


def _long(scores: np.ndarray):
    import pandas as pd

    n, k = scores.shape
    return pd.DataFrame({"s": np.repeat(np.arange(n), k), "c": np.tile(np.arange(k), n), "y": scores.ravel()})


@pytest.mark.parametrize("k", [2, 4])
def test_repeated_omnibus_equals_pingouin(k):
    import pingouin as pg

    scores = RNG.normal(size=(7, k)) * np.linspace(1, 2.5, k) + np.linspace(0, 0.8, k)
    scores[:, 0] = np.round(scores[:, 0], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rm = pg.rm_anova(_long(scores), dv="y", within="c", subject="s", correction=True).iloc[0]
        fr = pg.friedman(_long(np.round(scores, 0)), dv="y", within="c", subject="s").iloc[0]  # with ties
    mine = stats.repeated_omnibus(scores, parametric=True)
    assert mine.statistic == pytest.approx(rm["F"]) and mine.effect == pytest.approx(rm["ng2"])
    assert mine.p == pytest.approx(rm["p_GG_corr"] if k > 2 else rm["p_unc"])
    mine = stats.repeated_omnibus(np.round(scores, 0), parametric=False)
    assert mine.statistic == pytest.approx(fr["Q"]) and mine.p == pytest.approx(fr["p_unc"])
    assert mine.effect == pytest.approx(fr["W"])


def test_between_omnibus_equals_pingouin():
    import pandas as pd
    import pingouin as pg

    groups = [RNG.normal(m, 1, 6) for m in (0.0, 0.5, 2.0)]
    long = pd.DataFrame({"g": np.repeat([0, 1, 2], 6), "y": np.concatenate(groups)})
    ref = pg.anova(long, dv="y", between="g").iloc[0]
    mine = stats.between_omnibus(groups, parametric=True)
    assert mine.effect == pytest.approx(ref["np2"]) and mine.df == (ref["ddof1"], ref["ddof2"])
    assert stats.between_omnibus(groups, parametric=False).statistic == pytest.approx(
        pg.kruskal(long, dv="y", between="g")["H"].iloc[0])


def test_friedman_matches_scipy():
    scores = np.c_[A, B, A + RNG.normal(0, 0.02, 8)]
    res = stats.repeated_omnibus(scores, parametric=False)
    ref = scipy.stats.friedmanchisquare(*scores.T)
    assert res.test == "friedman" and res.statistic == pytest.approx(ref.statistic)
    assert res.p == pytest.approx(ref.pvalue)


def test_rm_anova_matches_hand_sums_of_squares():
    scores = np.c_[A, B]
    res = stats.repeated_omnibus(scores, parametric=True)
    n, k = scores.shape
    grand = scores.mean()
    ss_cond = n * ((scores.mean(0) - grand) ** 2).sum()
    resid = scores - scores.mean(0) - scores.mean(1, keepdims=True) + grand
    f = (ss_cond / (k - 1)) / ((resid**2).sum() / ((n - 1) * (k - 1)))
    assert res.statistic == pytest.approx(f) and res.df == (1.0, 7.0)
    assert res.statistic == pytest.approx(scipy.stats.ttest_rel(A, B).statistic ** 2)  # k = 2: F = t^2


def test_between_omnibus_matches_scipy():
    groups = [RNG.normal(m, 1, 6) for m in (0.0, 0.5, 2.0)]
    anova = stats.between_omnibus(groups, parametric=True)
    kw = stats.between_omnibus(groups, parametric=False)
    assert anova.statistic == pytest.approx(scipy.stats.f_oneway(*groups).statistic)
    assert anova.p == pytest.approx(scipy.stats.f_oneway(*groups).pvalue)
    assert kw.statistic == pytest.approx(scipy.stats.kruskal(*groups).statistic)
    assert kw.p == pytest.approx(scipy.stats.kruskal(*groups).pvalue)


@pytest.mark.parametrize("a, b", [
    (np.zeros(5), np.zeros(4)),            # lengths differ
    (np.zeros((2, 3)), np.zeros((2, 3))),  # not 1-D
    (np.zeros(2), np.zeros(2)),            # too few seeds
    (np.array([0.1, np.nan, 0.2]), np.zeros(3)),
])
def test_bad_shapes_raise_stats_error(a, b):
    with pytest.raises(StatsError):
        stats.paired_test(a, b)


def test_bad_omnibus_shapes_raise():
    with pytest.raises(StatsError):
        stats.repeated_omnibus(np.zeros((2, 3)), parametric=True)
    with pytest.raises(StatsError):
        stats.between_omnibus([np.zeros(3)], parametric=True)
