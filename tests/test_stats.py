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


def test_t_test_and_interval_match_scipy_ttest_rel():
    res = stats.paired_test(A, B)
    ref = scipy.stats.ttest_rel(A, B)
    assert res.test == "t" and res.n == 8 and res.df == 7
    assert res.statistic == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    assert res.mean_diff == pytest.approx(np.mean(A - B))
    low, high = ref.confidence_interval(0.95)
    assert res.diff_ci == pytest.approx((low, high))


def test_one_consistent_difference_is_significant_not_a_rank_artefact():
    # six seeds tie at +32 points, one differs by one example: the case the Wilcoxon pretest left at p_holm 0.125
    d = np.array([0.32] * 6 + [0.322])
    res = stats.paired_test(d + 0.5, np.full(7, 0.5))
    assert res.p < 1e-10 and res.diff_ci[0] > 0.31


def test_signflip_matches_scipy_permutation_test_and_its_floor():
    d = A - B
    res = stats.paired_test(A, B, test="signflip")
    ref = scipy.stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf)
    assert res.p == pytest.approx(ref.pvalue) and res.min_p == pytest.approx(2 / 2**8)
    wins = stats.paired_test(np.arange(5) + 1.0, np.zeros(5), test="signflip")
    assert wins.p == pytest.approx(2 / 2**5) and wins.min_p == wins.p  # 5 wins of 5: the floor, 0.0625
    assert stats.min_signflip_seeds(0.05) == 6 and stats.min_signflip_seeds(0.05 / 3) == 7


def test_crossed_origins_match_the_statsmodels_anova_by_hand():
    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(3)
    d = 0.04 + rng.normal(0, 0.02, (3, 1)) + rng.normal(0, 0.01, (1, 6)) + rng.normal(0, 0.005, (3, 6))
    long = pd.DataFrame({"y": d.ravel(), "o": np.repeat(np.arange(3), 6), "s": np.tile(np.arange(6), 3)})
    table = anova_lm(smf.ols("y ~ C(o) + C(s)", long).fit())
    ms_o, ms_s, ms_e = table["mean_sq"]
    mean, se, df = stats.crossed_t(d)
    assert ms_o > ms_e and ms_s > ms_e
    assert mean == pytest.approx(d.mean()) and se == pytest.approx(math.sqrt((ms_o + ms_s - ms_e) / 18))
    assert df == pytest.approx((ms_o + ms_s - ms_e) ** 2 / (ms_o**2 / 2 + ms_s**2 / 5 + ms_e**2 / 10))
    res = stats.paired_test(d + 0.5, np.full(6, 0.5))  # b has no originating module: broadcast
    assert res.n_origins == 3 and res.df == pytest.approx(df)
    one = stats.crossed_t(d[:1])
    assert one[1] == pytest.approx(d[0].std(ddof=1) / math.sqrt(6)) and one[2] == 5


def test_d_av_and_clopper_pearson_by_hand_and_against_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 3.0])  # sd 1 and sqrt(3): d_av = (1) / ((1 + 1.732) / 2)
    assert stats.d_av(a, b) == pytest.approx(1 / ((1 + math.sqrt(3)) / 2))
    assert math.isnan(stats.d_av(np.ones(4), np.zeros(4)))
    assert stats.clopper_pearson(5, 5) == pytest.approx(proportion_confint(5, 5, method="beta"))
    assert stats.clopper_pearson(3, 7, 0.9) == pytest.approx(proportion_confint(3, 7, alpha=0.1, method="beta"))
    res = stats.paired_test(np.arange(5) + 1.0, np.zeros(5))
    assert res.p_superior == 1.0 and res.p_superior_ci[0] == pytest.approx(0.478, abs=1e-3)


def test_prob_superior_counts_ties_half():
    assert stats.prob_superior(np.array([1.0, -1.0, 0.0, 2.0])) == pytest.approx(0.625)


def test_constant_difference_has_no_seed_level_interval():
    res = stats.paired_test(A, A - 0.01)
    assert res.constant and res.test == "none" and math.isnan(res.p)
    assert res.mean_diff == pytest.approx(0.01) and all(math.isnan(x) for x in res.diff_ci)


def test_unknown_test_is_refused():
    with pytest.raises(StatsError, match="unknown test"):
        stats.paired_test(A, B, test="wilcoxon")


def _coverage(draw, truth: float, studies: int = 2000) -> float:
    hits = 0
    for i in range(studies):
        a, b = draw(np.random.default_rng(i))
        low, high = stats.paired_test(a, b).diff_ci
        hits += low <= truth <= high
    return hits / studies


def test_t_intervals_cover_95_percent_at_5_seeds_in_simulation():
    # accuracies on 500 examples: a seed effect, binomial example noise, a true 3-point difference
    def accuracies(rng):
        p = 0.7 + rng.normal(0, 0.02, 5)
        return rng.binomial(500, p + 0.03) / 500, rng.binomial(500, p) / 500

    assert _coverage(accuracies, 0.03) >= 0.92
    # three originating modules crossed with five seeds; the truth is the method's mean, over modules
    def crossed(rng):
        a = 0.74 + rng.normal(0, 0.02, (3, 1)) + rng.normal(0, 0.01, (1, 5)) + rng.normal(0, 0.01, (3, 5))
        return a, 0.7 + rng.normal(0, 0.01, 5)

    assert _coverage(crossed, 0.04) >= 0.92


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
    assert stats.seeds_needed(d, alpha=alpha, test="signflip") == max(ref, stats.min_signflip_seeds(alpha))


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


def test_paired_t_equals_pingouin():
    import pingouin as pg

    t = stats.paired_test(A, B)
    ref = pg.ttest(A, B, paired=True).iloc[0]
    assert t.statistic == pytest.approx(ref["T"]) and t.p == pytest.approx(ref["p_val"])
    assert t.diff_ci == pytest.approx(tuple(ref["CI95"]), abs=0.005)  # pingouin rounds to 2 decimals


def test_replicability_count_by_hand():
    # n = 4: partial-conjunction p's 4 x 0.001, 3 x 0.01, 2 x 0.02, 1 x 0.5 -> 0.004, 0.03, 0.04, 0.5
    p = np.array([0.5, 0.01, 0.001, 0.02])
    assert stats.replicability_count(p, 0.05) == 3 and stats.replicability_count(p, 0.035) == 2
    assert stats.replicability_count(np.array([np.nan, 0.001]), 0.05) == 1


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
    (np.zeros((2, 3)), np.zeros((3, 3))),  # origins differ and neither broadcasts
    (np.zeros((2, 2, 3)), np.zeros(3)),    # not [origins, seeds]
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
