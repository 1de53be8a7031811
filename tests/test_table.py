"""BENCHMARKS.md's headline table says what the analysis says."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.analyze import AnalysisOptions, analyze_table
from harness.report.headline import headline_table


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for budget in (0, 50):
        for seed in range(8):
            base = 0.5 + 0.1 * rng.standard_normal()
            for cond, lift in (("ported", 0.3), ("scratch", 0.0), ("sampled", -0.02), ("host", 0.01)):
                rows.append(dict(experiment="e", family="lora", library="peft", pair="a -> b", origin="a",
                                 receiving="b", data="t -> t", condition=cond, budget=budget, seed=seed,
                                 accuracy=float(np.clip(base + lift + 0.01 * rng.standard_normal(), 0, 1)),
                                 run_id=f"{cond}-{seed}"))
    return pd.DataFrame(rows)


def test_headline_table_rows_match_the_analysis():
    table = _table()
    analysis = analyze_table(table, AnalysisOptions(n_boot=1000))
    text = headline_table(analysis)
    rows = [line for line in text.splitlines() if line.startswith("| lora")]
    assert len(rows) == 2  # one per budget
    header = next(line for line in text.splitlines() if line.startswith("| family"))
    assert "ported − scratch" in header and "p_holm" in header
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        budget = int(cells[3])
        expected = table[(table.budget == budget) & (table.condition == "ported")].accuracy.mean() * 100
        assert float(cells[4]) == round(expected, 1)
