"""harness.analysis.resample against statsmodels, scipy and hand computations: McNemar, its power, the bootstraps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from harness.analysis import resample
from harness.errors import StatsError

RNG = np.random.default_rng(11)


def test_mcnemar_matches_statsmodels_exact():
    from statsmodels.stats.contingency_tables import mcnemar

    a = RNG.random(500) < 0.8
    b = np.where(RNG.random(500) < 0.1, ~a, a)
    a_only, b_only, p = resample.mcnemar(a, b)
    table = [[int((a & b).sum()), a_only], [b_only, int((~a & ~b).sum())]]
    assert a_only == int((a & ~b).sum()) and p == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert resample.mcnemar(a, a) == (0, 0, 1.0)
    assert resample.mcnemar(np.ones(10, bool), np.zeros(10, bool))[2] == pytest.approx(2 / 2**10)


def test_mcnemar_power_matches_a_seeded_simulation():
    n, delta, disc, alpha = 300, 0.04, 0.12, 0.05
    exact = resample.mcnemar_power(delta, disc, n, alpha)
    rng, hits = np.random.default_rng(0), 0
    for _ in range(3000):
        a_only, b_only, _ = rng.multinomial(n, [(disc + delta) / 2, (disc - delta) / 2, 1 - disc])
        hits += a_only + b_only > 0 and scipy.stats.binomtest(a_only, a_only + b_only).pvalue < alpha
    assert abs(exact - hits / 3000) < 0.03
    assert resample.mcnemar_power(0.2, 0.3, 500, alpha) > 0.99


def test_counts_resample_every_item_n_times():
    c = resample.counts(7, 1000, np.random.default_rng(0))
    assert c.shape == (1000, 7) and (c.sum(1) == 7).all() and abs(c.mean() - 1) < 0.05


def test_hierarchical_bootstrap_equals_a_hand_loop_with_the_same_draws():
    a, b = RNG.random((4, 60)) < 0.7, RNG.random((4, 60)) < 0.6
    weights = resample.example_weights(60, 500, seed=1)
    res = resample.hierarchical_bootstrap(a, b, weights, ci=0.9, seed=5)
    seeds = resample.counts(4, 500, np.random.default_rng(5))
    d = (a.astype(float) - b)
    hand = np.array([(seeds[i] @ d @ weights[i]) / (4 * 60) for i in range(500)])
    assert res.ci == pytest.approx(tuple(np.quantile(hand, [0.05, 0.95])), rel=1e-5)
    assert res.mean_diff == pytest.approx(d.mean()) and not res.deterministic and math.isnan(res.mcnemar_p)


def test_deterministic_comparison_gets_mcnemar_and_the_paired_example_bootstrap():
    a = RNG.random(500) < 0.8
    b = np.where(RNG.random(500) < 0.15, ~a, a)
    runs = lambda x: np.repeat(x[None, None], 5, axis=1)  # noqa: E731 - five seeds, identical answers
    res = resample.hierarchical_bootstrap(runs(a), runs(b), resample.example_weights(500, 10000, 2), ci=0.95, seed=0)
    assert res.deterministic and res.mcnemar_p == pytest.approx(resample.mcnemar(a, b)[2])
    ref = scipy.stats.bootstrap((a.astype(float) - b,), np.mean, n_resamples=10000, method="percentile",
                                rng=np.random.default_rng(0)).confidence_interval
    assert res.ci == pytest.approx((ref.low, ref.high), abs=0.004)
    assert res.ci[1] - res.ci[0] > 0.02  # an honest width where seeds alone would give none


def test_example_bootstrap_covers_95_percent_in_simulation():
    # a population where a is right 3 points more often than b; each study draws 400 examples
    hits, weights = 0, resample.example_weights(400, 1000, 0)
    for i in range(300):
        rng = np.random.default_rng(100 + i)
        u = rng.random(400)
        a, b = u < 0.80, (u < 0.74) | (u > 0.97)   # P(a) = 0.80, P(b) = 0.77, 9% of examples discordant
        truth = 0.03
        res = resample.hierarchical_bootstrap(a, b, weights, ci=0.95, seed=i)
        hits += res.ci[0] <= truth <= res.ci[1]
    assert hits / 300 >= 0.92


def test_stratified_aggregate_and_probability_of_improvement_by_hand():
    cells = [(np.array([0.8, 0.9]), np.array([0.7, 0.95])), (np.array([0.6, 0.6, 0.6]), np.array([0.5, 0.6, 0.7]))]
    agg = resample.stratified_aggregate(cells, n_boot=2000, ci=0.95, seed=0)
    # cell 1: pairs (0.8>0.7, 0.8<0.95, 0.9>0.7, 0.9<0.95) = 2/4; cell 2: 3 wins, 3 ties of 9 = 4.5/9
    assert agg.p_improvement == pytest.approx((0.5 + 0.5) / 2)
    assert agg.mean_diff == pytest.approx(((0.1 - 0.05) / 2 + 0) / 2) and agg.cells == 2
    assert agg.ci[0] < agg.mean_diff < agg.ci[1]
    sure = resample.stratified_aggregate([(np.ones(5), np.zeros(5))], n_boot=500, ci=0.95, seed=0)
    assert sure.p_improvement == 1.0 and all(math.isnan(x) for x in sure.p_improvement_ci)


def test_bad_shapes_are_refused():
    w = resample.example_weights(10, 100, 0)
    with pytest.raises(StatsError, match="not paired"):
        resample.hierarchical_bootstrap(np.zeros((3, 10)), np.zeros((2, 10)), w, ci=0.95, seed=0)
    with pytest.raises(StatsError, match="weights are for 10"):
        resample.hierarchical_bootstrap(np.zeros((3, 9)), np.zeros((3, 9)), w, ci=0.95, seed=0)
    with pytest.raises(StatsError):
        resample.mcnemar(np.zeros(3), np.zeros(4))
