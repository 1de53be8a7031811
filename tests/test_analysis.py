"""harness.analysis.analyze on synthetic run tables: cells, pairing, grid-wide correction, omnibus, power, warnings."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from harness.analysis import resample, stats
from harness.analysis.analyze import (
    Analysis,
    AnalysisOptions,
    analyze_dir,
    analyze_table,
    default_pairs,
    load_analysis,
)
from harness.errors import ConfigError, StatsError

EFFECT = {"ported": 0.08, "ported:weights": 0.05, "scratch": 0.0, "sampled": -0.01}
FAST = AnalysisOptions(n_boot=500)


def make_table(families=("lora",), pairs=("t5-a -> t5-b",), datas=("sst2 -> sst2",), budgets=(0, 100),
               conditions=("ported", "scratch", "sampled", "host"), seeds=range(6), effect=None, noise=0.02,
               host_at_every_budget=False, seed=0) -> pd.DataFrame:
    """A tidy table as harness.analysis.tables.load_table returns it; host scores 0.5 on every seed."""
    effect = {**EFFECT, **(effect or {})}
    rng, rows = np.random.default_rng(seed), []
    for fam in families:
        for pair in pairs:
            for data in datas:
                for budget in budgets:
                    for cond in conditions:
                        if cond == "host" and budget != budgets[0] and not host_at_every_budget:
                            continue
                        for s in seeds:
                            acc = 0.5 if cond == "host" else 0.6 + effect[cond] + rng.normal(0, noise)
                            origin, receiving = pair.split(" -> ")
                            rows.append(dict(experiment="exp", family=fam, library="peft", pair=pair,
                                             origin=origin, receiving=receiving, data=data, condition=cond,
                                             budget=budget, seed=s, accuracy=float(np.clip(acc, 0, 1)),
                                             run_id=f"{fam}-{cond}-{budget}-{s}"))
    return pd.DataFrame(rows)


def test_default_pairs_put_ported_first_and_pair_each_once():
    assert default_pairs(["scratch", "host", "ported", "sampled"]) == [
        ("ported", "scratch"), ("ported", "sampled"), ("ported", "host")]
    pairs = default_pairs(["ported", "ported:embed", "scratch"])
    assert ("ported", "ported:embed") in pairs and ("ported:embed", "ported") not in pairs
    assert ("ported:embed", "scratch") in pairs and len(pairs) == 3


def test_cells_comparisons_and_family_corrections():
    a = analyze_table(make_table(families=("lora", "ia3"), budgets=(0, 100, 1000)), FAST)
    assert len(a.comparisons) == 2 * 3 * 3  # families x budgets x (scratch, sampled, host)
    for family, method, size in (("primary", "holm", 12), ("secondary", "fdr_bh", 6)):
        group = [c for c in a.comparisons if c.family == family]
        p = np.array([c.primary_p for c in group])
        assert len(group) == size and np.allclose([c.p_corr for c in group], stats.correct(p, method))
    assert {(c.a, c.b) for c in a.comparisons if c.family == "primary"} == {("ported", "scratch"), ("ported", "sampled")}
    assert all(c.p_corr >= c.result.p and c.primary_test == "t" for c in a.comparisons)
    rep = next(r for r in a.replicability if r.b == "scratch")
    assert (rep.cells, rep.better, rep.worse) == (6, 6, 0)
    big = [c for c in a.comparisons if (c.a, c.b) == ("ported", "scratch")]
    assert all(c.verdict.startswith("ported beats scratch by") for c in big)


def test_matches_scipy_on_one_cell():
    table = make_table(budgets=(0,))
    a = analyze_table(table, AnalysisOptions(test="t", n_boot=500))
    c = next(c for c in a.comparisons if c.b == "scratch")
    x = table[table.condition == "ported"].sort_values("seed")["accuracy"].to_numpy()
    y = table[table.condition == "scratch"].sort_values("seed")["accuracy"].to_numpy()
    assert c.result.p == pytest.approx(scipy.stats.ttest_rel(x, y).pvalue)
    assert c.result.mean_diff == pytest.approx((x - y).mean())


def test_fdr_bh_is_never_stricter_than_holm():
    table = make_table(budgets=(0, 100, 1000), effect={"ported": 0.015})
    holm = analyze_table(table, FAST)
    bh = analyze_table(table, AnalysisOptions(n_boot=500, correction="fdr_bh"))
    assert all(b.p_corr <= h.p_corr + 1e-12 for b, h in zip(bh.comparisons, holm.comparisons))
    assert any(b.p_corr < h.p_corr for b, h in zip(bh.comparisons, holm.comparisons))


def test_host_at_budget_zero_only_equals_host_repeated():
    once = analyze_table(make_table(budgets=(0, 100)), FAST)
    every = analyze_table(make_table(budgets=(0, 100), host_at_every_budget=True), FAST)
    assert [c.result for c in once.comparisons] == [c.result for c in every.comparisons]
    assert any("recorded at budget 0 only" in w for w in once.warnings)
    assert not any("recorded at budget 0 only" in w for w in every.warnings)
    host_100 = [s for s in once.conditions if s.condition == "host" and s.cell.budget == 100]
    assert host_100 and host_100[0].copied_from_budget == 0


def test_missing_seeds_pair_on_the_common_ones():
    table = make_table(budgets=(0,))
    table = table[~((table.condition == "scratch") & (table.seed == 5))]
    a = analyze_table(table, FAST)
    c = next(c for c in a.comparisons if c.b == "scratch")
    assert c.result.n == 5 and c.missing_seeds == (5,)
    assert any("seeds 5 lack" in w for w in a.warnings)


def test_explicit_comparisons_and_same_seed_same_result():
    opts = AnalysisOptions(comparisons=(("scratch", "sampled"),), n_boot=500, seed=3)
    a, b = analyze_table(make_table(), opts), analyze_table(make_table(), opts)
    assert {(c.a, c.b) for c in a.comparisons} == {("scratch", "sampled")}
    assert a == b
    other = analyze_table(make_table(), AnalysisOptions(comparisons=opts.comparisons, n_boot=500, seed=4))
    assert [c.result for c in other.comparisons] == [c.result for c in a.comparisons]  # t intervals: no resampling
    assert [x.result.ci for x in other.aggregates] != [x.result.ci for x in a.aggregates]


def test_signflip_floor_is_said_plainly_and_t_is_the_default():
    table = make_table(budgets=(0,), seeds=range(5))
    five = analyze_table(table, AnalysisOptions(test="signflip", n_boot=500))
    assert any("can never give p < 0.05" in w and "2/2^5" in w for w in five.warnings)
    assert all(c.verdict.startswith("inconclusive") for c in five.comparisons if not c.result.constant)
    t = analyze_table(table, FAST)
    assert all(c.verdict.startswith("ported beats") for c in t.comparisons if c.b != "host")


def test_power_uses_target_difference():
    table = make_table(budgets=(0,), effect={"ported": 0.01}, noise=0.03)
    observed = analyze_table(table, FAST)
    target = analyze_table(table, AnalysisOptions(n_boot=500, target_difference=0.002))
    for o, t in zip(observed.comparisons, target.comparisons):
        if o.b != "host":
            assert t.power_difference == 0.002 and t.seeds_needed > o.seeds_needed
            assert o.seeds_needed_corrected >= o.seeds_needed
    assert any("underpowered" in w for w in target.warnings)


def test_no_difference_verdict():
    table = make_table(budgets=(0,), effect={"ported": 0.0, "sampled": 0.0}, conditions=("ported", "scratch"),
                       seeds=range(10), seed=2)
    c = analyze_table(table, FAST).comparisons[0]
    assert c.p_corr >= 0.05 and c.verdict.startswith(("no evidence", "ported − scratch"))


def test_constant_difference_without_examples_is_untested_and_with_them_gets_mcnemar():
    table = make_table(budgets=(0,), conditions=("ported", "host"), noise=0.0)
    a = analyze_table(table, FAST)
    c = a.comparisons[0]
    assert c.result.constant and c.primary_test == "none" and math.isnan(c.p_corr) and "untested" in c.verdict
    assert any("no per-example results" in w for w in a.warnings)
    rng = np.random.default_rng(0)
    right = {cond: rng.random(400) < (0.68 if cond == "ported" else 0.5) for cond in ("ported", "host")}
    examples = {r.run_id: {r.budget: right[r.condition]} for r in table.itertuples()}
    c = analyze_table(table, FAST, examples).comparisons[0]
    a_only, _, p = resample.mcnemar(right["ported"], right["host"])
    assert c.primary_test == "mcnemar" and c.primary_p == pytest.approx(p) and c.examples.a_only == a_only
    assert c.examples.ci[0] > 0 and c.verdict.startswith("ported beats host") and "McNemar" in c.verdict


def test_examples_give_example_level_evidence_beside_the_seed_test():
    table = make_table(budgets=(0, 100), conditions=("ported", "scratch"))
    rng = np.random.default_rng(1)
    examples = {r.run_id: {r.budget: rng.random(300) < r.accuracy} for r in table.itertuples()}
    a = analyze_table(table, FAST, examples)
    for c in a.comparisons:
        assert c.examples is not None and c.examples.n_examples == 300 and not c.examples.deterministic
        assert c.examples.ci[0] < c.examples.mean_diff < c.examples.ci[1]
    frame = a.comparisons_frame()
    assert {"ex_ci_low", "ex_p", "primary_test", "family"} <= set(frame.columns)


def test_origin_seeds_are_a_random_factor():
    table = make_table(budgets=(0,), conditions=("ported", "scratch"), seeds=range(5))
    ported = table[table.condition == "ported"]
    shifts = {0: 0.0, 1: -0.05, 2: 0.04}
    extra = [ported.assign(origin_seed=o, accuracy=ported.accuracy + d, run_id=ported.run_id + f"-o{o}")
             for o, d in shifts.items()]
    crossed = pd.concat([table[table.condition != "ported"].assign(origin_seed=-1), *extra], ignore_index=True)
    one = analyze_table(table, FAST).comparisons[0]
    three = analyze_table(crossed, FAST).comparisons[0]
    assert three.result.n_origins == 3 and one.result.n_origins == 1
    width = lambda c: c.result.diff_ci[1] - c.result.diff_ci[0]  # noqa: E731
    assert width(three) > 2 * width(one)  # the module-to-module spread now counts
    summary = next(s for s in analyze_table(crossed, FAST).conditions if s.condition == "ported")
    assert summary.origins == (0, 1, 2) and len(summary.by_origin) == 3


def test_omnibus_per_cell_and_across_families():
    table = make_table(families=("lora", "ia3", "bottleneck"), budgets=(0,), seeds=range(8))
    shifted = table["family"].eq("ia3") & table["condition"].eq("ported")
    table.loc[shifted, "accuracy"] -= 0.07
    a = analyze_table(table, AnalysisOptions(test="t", n_boot=500))
    assert len(a.cell_omnibus) == 3 and all(o.result.k == 4 for o in a.cell_omnibus)
    fam = next(f for f in a.family_omnibus if f.b == "scratch")
    diffs = []
    for name in fam.families:
        part = table[table.family == name.split("/")[0]]
        x = part[part.condition == "ported"].sort_values("seed")["accuracy"].to_numpy()
        y = part[part.condition == "scratch"].sort_values("seed")["accuracy"].to_numpy()
        diffs.append(x - y)
    assert fam.result.statistic == pytest.approx(scipy.stats.f_oneway(*diffs).statistic)
    assert fam.p_corr < 0.05


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="seed"), "lacks column"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "duplicate"),
    (lambda t: t.assign(origin_seed=0).pipe(lambda x: pd.concat([x, x.iloc[:1]])), "duplicate"),
    (lambda t: t.assign(accuracy=t.accuracy * 100), r"in \[0, 1\]"),
])
def test_bad_tables_raise(change, message):
    with pytest.raises(StatsError, match=message):
        analyze_table(change(make_table(budgets=(0,))), FAST)


@pytest.mark.parametrize("kwargs", [{"test": "welch"}, {"test": "auto"}, {"correction": "bonferroni"}, {"alpha": 2.0},
                                    {"target_difference": 5.0}, {"n_boot": 10}])
def test_bad_options_raise(kwargs):
    with pytest.raises(ConfigError):
        AnalysisOptions(**kwargs)


def test_analyze_dir_writes_json_and_csv_that_round_trip(tmp_path, monkeypatch):
    import harness.analysis.tables

    table = make_table(budgets=(0, 100))
    monkeypatch.setattr(harness.analysis.tables, "load_table", lambda run_dir: table)
    a = analyze_dir(tmp_path, FAST)
    data = json.loads((tmp_path / "analysis.json").read_text())
    assert data["options"]["correction"] == "holm" and len(data["comparisons"]) == len(a.comparisons)
    assert load_analysis(tmp_path) == a == Analysis.from_dict(a.to_dict())
    csv = pd.read_csv(tmp_path / "analysis.csv")
    assert len(csv) == len(a.comparisons) and {"p_corr", "diff_ci_low", "verdict"} <= set(csv.columns)
