"""Per-example sidecar files: written whole beside the record, read back exactly; older records still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.analysis.analyze import AnalysisOptions, analyze_dir
from harness.analysis.tables import load_table
from harness.errors import StatsError
from harness.runs.examples import correct_by_budget, load_examples, read_examples, write_examples
from harness.runs.record import RunRecord
from harness.runs.rundir import RunDir
from hubport.engine.evaluation import label_margins


def _record(run_id: str, condition: str, seed: int, accuracy: float, examples: dict | None) -> dict:
    spec = {"experiment": "e", "family": {"name": "lora", "library": "peft", "config": []}, "origin": "a",
            "receiving": "b", "origin_data": "t", "receiving_data": "t", "condition": condition, "seed": seed,
            "budgets": [0]}
    record = {"run_id": run_id, "status": "ok", "spec": spec, "metrics": {"0": {"accuracy": accuracy, "n": 200}},
              "seeds": {"origin": 0 if condition == "ported" else None}}
    return {**record, "examples": examples} if examples is not None else record


def _study(tmp_path, with_examples: bool):
    rng, rundir = np.random.default_rng(0), RunDir(tmp_path)
    gold = rng.integers(0, 2, 200)
    for cond, skill in (("ported", 0.85), ("scratch", 0.6)):
        for seed in range(4):
            pred = np.where(rng.random(200) < skill, gold, 1 - gold)
            run_id = f"{cond}-{seed}"
            side = None
            if with_examples:
                side = write_examples(rundir.runs, run_id, gold, {0: (pred, rng.normal(size=200))})
            rundir.write(RunRecord.from_dict(_record(run_id, cond, seed, float((pred == gold).mean()), side)))
    return gold


def test_sidecar_round_trips_one_row_per_example_and_budget(tmp_path):
    gold = np.array([0, 1, 1, 0])
    side = write_examples(tmp_path, "r1", gold, {0: ([0, 0, 1, 1], [1.5, -0.2, 0.3, -2.0]), 10: ([0, 1, 1, 0], [1, 2, 3, 4])})
    assert side["file"] == "r1.examples.npz" and side["rows"] == 8 and len(side["sha256"]) == 64
    columns = read_examples(tmp_path / side["file"])
    assert columns["budget"].tolist() == [0] * 4 + [10] * 4 and columns["id"].tolist() == [0, 1, 2, 3] * 2
    assert columns["margin"][:4] == pytest.approx([1.5, -0.2, 0.3, -2.0])
    right = correct_by_budget(columns)
    assert right[0].tolist() == [True, False, True, False] and right[10].all()
    assert not list(tmp_path.glob(".*tmp*"))


def test_margins_are_the_gold_score_minus_the_best_other():
    scores = np.array([[-1.0, -3.0, -2.0], [-4.0, -0.5, -0.1]])
    assert label_margins(scores, np.array([0, 1])) == pytest.approx([1.0, -0.4])


def test_analysis_reads_the_sidecars_and_shows_example_level_evidence(tmp_path):
    _study(tmp_path, with_examples=True)
    examples = load_examples(tmp_path)
    assert len(examples) == 8 and all(set(v) == {0} for v in examples.values())
    analysis = analyze_dir(tmp_path, AnalysisOptions(n_boot=500))
    c = analysis.comparisons[0]
    assert c.examples is not None and c.examples.n_examples == 200 and c.examples.ci[0] > 0
    assert json.loads((tmp_path / "analysis.json").read_text())["comparisons"][0]["examples"]["n_examples"] == 200


def test_a_record_from_before_the_sidecars_still_loads(tmp_path):
    _study(tmp_path, with_examples=False)
    assert len(load_table(tmp_path)) == 8 and load_examples(tmp_path) == {}
    c = analyze_dir(tmp_path, AnalysisOptions(n_boot=500)).comparisons[0]
    assert c.examples is None and c.primary_test == "t"  # seed-level evidence only


def test_a_missing_sidecar_is_refused_with_the_fix(tmp_path):
    _study(tmp_path, with_examples=True)
    (tmp_path / "runs" / "ported-0.examples.npz").unlink()
    with pytest.raises(StatsError, match="ported-0.examples.npz, which is missing") as info:
        load_examples(tmp_path)
    assert "delete runs/ported-0.json and rerun the grid" in info.value.one_line().lower()
