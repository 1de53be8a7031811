"""Benchmark: analyse a synthetic 1,440-run table with 10,000 bootstrap resamples per interval (target <= 10 s).

Grid: 6 families x 2 host pairs x 2 data combinations x 3 budgets x 4 conditions x 5 seeds = 1,440 runs, so
216 paired comparisons, each with three BCa/percentile intervals, plus 72 omnibus and 36 across-family tests.
Also times pingouin's per-interval bootstrap loop on a few intervals, side by side with the vectorised one,
to show why the analysis uses scipy.stats.bootstrap(vectorized=True).

    .venv/bin/python benchmarks/bench_stats.py [--n-boot 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "2")  # the target is for 2 cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TARGET_S = 10.0
FAMILIES = ("lora", "ia3", "prefix_tuning", "prompt_tuning", "bottleneck", "compacter")
EFFECT = {"ported": 0.06, "scratch": 0.0, "sampled": -0.01, "host": -0.15}


def synthetic_table(seed: int = 0) -> pd.DataFrame:
    """1,440 rows shaped like harness.analysis.tables.load_table output, with realistic seed noise."""
    rng, rows = np.random.default_rng(seed), []
    for fam in FAMILIES:
        for pair in ("t5-small -> flan-t5-small", "flan-t5-small -> t5-small"):
            for data in ("sst2 -> sst2", "sst2 -> rotten_tomatoes"):
                for budget in (0, 100, 1000):
                    for cond, shift in EFFECT.items():
                        for s in range(5):
                            acc = 0.7 + shift * (1 - budget / 2000) + rng.normal(0, 0.02)
                            rows.append(dict(experiment="bench", family=fam, library="peft", pair=pair,
                                             origin=pair.split(" -> ")[0], receiving=pair.split(" -> ")[1],
                                             data=data, condition=cond, budget=budget, seed=s,
                                             accuracy=float(np.clip(acc, 0, 1)), run_id=f"{fam}-{cond}-{s}"))
    return pd.DataFrame(rows)


def time_analysis(table: pd.DataFrame, n_boot: int, repeat: int) -> tuple[list[float], object]:
    """Seconds of each run; the first includes importing pingouin/scipy.stats lazily, as a CLI call would."""
    from harness.analysis.analyze import AnalysisOptions, analyze_table

    times, analysis = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        analysis = analyze_table(table, AnalysisOptions(n_boot=n_boot))
        times.append(time.perf_counter() - start)
    return times, analysis


def time_intervals(n_boot: int, count: int = 20) -> tuple[float, float]:
    """Seconds per Hedges-g interval: pingouin.compute_bootci (callable, looped) vs harness.analysis.stats (vectorised)."""
    import pingouin as pg

    from harness.analysis import stats

    d = np.random.default_rng(1).normal(0.05, 0.02, size=5)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(count):
            pg.compute_bootci(d, func=lambda x: float(stats.hedges_g(np.asarray(x))), n_boot=n_boot, seed=i,
                              decimals=6)
    looped = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for i in range(count):
        stats.bootstrap_ci(d, stats.hedges_g, n_boot=n_boot, ci=0.95, seed=i)
    return looped, (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = synthetic_table()
    times, analysis = time_analysis(table, args.n_boot, args.repeat)
    seconds = min(times)
    print(f"table: {len(table)} runs, {len(analysis.comparisons)} comparisons, {len(analysis.cell_omnibus)} cell "
          f"omnibus, {len(analysis.family_omnibus)} family omnibus tests, n_boot={args.n_boot}, cores={os.cpu_count()}")
    print(f"analysis: {seconds:.2f} s (best of {args.repeat}); ratio to the {TARGET_S:.0f} s target: "
          f"{seconds / TARGET_S:.2f}; first run, lazy imports included: {times[0]:.2f} s "
          f"(ratio {times[0] / TARGET_S:.2f})")
    looped, vectorised = time_intervals(args.n_boot)
    print(f"one Hedges-g interval: pingouin.compute_bootci loop {looped * 1000:.1f} ms, vectorised "
          f"{vectorised * 1000:.1f} ms (x{looped / vectorised:.0f}); a loop for all {3 * len(analysis.comparisons)} "
          f"intervals would take ~{looped * 3 * len(analysis.comparisons):.0f} s")


if __name__ == "__main__":
    main()
