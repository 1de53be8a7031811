"""Benchmark: analyse a synthetic 1,440-run table, 500 examples a run, 10,000 resamples (target <= 10 s, 2 cores).

Grid: 6 families x 2 host pairs x 2 data combinations x 3 budgets x 4 conditions x 5 seeds = 1,440 runs, so
216 paired comparisons, each with its seed-level t-test and a hierarchical bootstrap over seeds and the 500
shared examples (10,000 resamples), 54 stratified aggregates, plus 72 omnibus and 36 across-family tests.
Also times a looped hierarchical bootstrap (resample indices, then average, per resample) on a few comparisons,
side by side with the vectorised one (one shared example-weight matrix, one matrix product per comparison).

    .venv/bin/python benchmarks/bench_stats.py [--n-boot 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")  # the target is for 2 cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TARGET_S = 10.0
FAMILIES = ("lora", "ia3", "prefix_tuning", "prompt_tuning", "bottleneck", "compacter")
EFFECT = {"ported": 0.06, "scratch": 0.0, "sampled": -0.01, "host": -0.15}


N_EXAMPLES = 500


def synthetic_table(seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """1,440 rows shaped like harness.analysis.tables.load_table output, with realistic seed noise, and per-example
    correctness for each (shaped like harness.runs.examples.load_examples output)."""
    rng, rows, examples = np.random.default_rng(seed), [], {}
    for fam in FAMILIES:
        for pair in ("t5-small -> flan-t5-small", "flan-t5-small -> t5-small"):
            for data in ("sst2 -> sst2", "sst2 -> rotten_tomatoes"):
                for budget in (0, 100, 1000):
                    for cond, shift in EFFECT.items():
                        for s in range(5):
                            p = float(np.clip(0.7 + shift * (1 - budget / 2000) + rng.normal(0, 0.02), 0, 1))
                            right = rng.random(N_EXAMPLES) < p
                            run_id = f"{fam}-{pair}-{data}-{cond}-{s}"
                            examples.setdefault(run_id, {})[budget] = right
                            rows.append(dict(experiment="bench", family=fam, library="peft", pair=pair,
                                             origin=pair.split(" -> ")[0], receiving=pair.split(" -> ")[1],
                                             data=data, condition=cond, budget=budget, seed=s,
                                             accuracy=float(right.mean()), run_id=run_id))
    return pd.DataFrame(rows), examples


def time_analysis(table: pd.DataFrame, examples: dict, n_boot: int, repeat: int) -> tuple[list[float], object]:
    """Seconds of each run; the first includes importing pingouin/scipy.stats lazily, as a CLI call would."""
    from harness.analysis.analyze import AnalysisOptions, analyze_table

    times, analysis = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        analysis = analyze_table(table, AnalysisOptions(n_boot=n_boot), examples)
        times.append(time.perf_counter() - start)
    return times, analysis


def time_bootstraps(n_boot: int, count: int = 3) -> tuple[float, float]:
    """Seconds per comparison: a per-resample loop (draw seeds, draw examples, average) vs harness.analysis.resample."""
    from harness.analysis import resample

    rng = np.random.default_rng(1)
    a, b = rng.random((5, N_EXAMPLES)) < 0.75, rng.random((5, N_EXAMPLES)) < 0.7
    d = a.astype(float) - b
    start = time.perf_counter()
    for i in range(count):
        r = np.random.default_rng(i)
        stats = [d[r.integers(0, 5, 5)][:, r.integers(0, N_EXAMPLES, N_EXAMPLES)].mean() for _ in range(n_boot)]
        np.quantile(stats, [0.025, 0.975])
    looped = (time.perf_counter() - start) / count
    weights = resample.example_weights(N_EXAMPLES, n_boot, 0)   # made once per evaluation set in the analysis
    start = time.perf_counter()
    for i in range(count):
        resample.hierarchical_bootstrap(a[None], b[None], weights, ci=0.95, seed=i)
    return looped, (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table, examples = synthetic_table()
    times, analysis = time_analysis(table, examples, args.n_boot, args.repeat)
    seconds = min(times)
    with_examples = sum(c.examples is not None for c in analysis.comparisons)
    print(f"table: {len(table)} runs x {N_EXAMPLES} examples, {len(analysis.comparisons)} comparisons "
          f"({with_examples} with the hierarchical bootstrap), {len(analysis.aggregates)} aggregates, "
          f"{len(analysis.cell_omnibus)} cell omnibus, {len(analysis.family_omnibus)} family omnibus tests, "
          f"n_boot={args.n_boot}, cores={os.cpu_count()}")
    print(f"analysis: {seconds:.2f} s (best of {args.repeat}); ratio to the {TARGET_S:.0f} s target: "
          f"{seconds / TARGET_S:.2f}; first run, lazy imports included: {times[0]:.2f} s "
          f"(ratio {times[0] / TARGET_S:.2f})")
    looped, vectorised = time_bootstraps(args.n_boot)
    print(f"one hierarchical bootstrap (5 seeds x {N_EXAMPLES} examples): per-resample loop {looped * 1000:.0f} ms, "
          f"vectorised {vectorised * 1000:.1f} ms (x{looped / vectorised:.0f}); a loop for all "
          f"{len(analysis.comparisons)} comparisons would take ~{looped * len(analysis.comparisons):.0f} s")


if __name__ == "__main__":
    main()
