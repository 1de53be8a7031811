"""Records: atomic sorted JSON, the manifest guard, resume bookkeeping, the driver lock, load_table."""

from __future__ import annotations

import json
import math

import pytest

from harness.analysis.tables import COLUMNS, load_table
from harness.errors import ConfigError
from harness.runs.io import read_json, write_json
from harness.runs.record import RunRecord
from harness.runs.rundir import RunDir
from hubport.errors import HubportError


def spec(condition: str, seed: int, budgets: list[int], family: str = "lora") -> dict:
    return {"experiment": "e", "family": {"name": family, "library": "peft", "config": []}, "origin": "t5",
            "receiving": "flan", "origin_data": "sst2", "receiving_data": "rt", "condition": condition,
            "seed": seed, "budgets": budgets}


def record(run_id: str, condition: str, seed: int, accuracies: dict[int, float], status: str = "ok",
           **fields) -> RunRecord:
    budgets = [] if condition == "host" else sorted(accuracies)
    return RunRecord.from_dict({
        "run_id": run_id, "status": status, "spec": spec(condition, seed, budgets),
        "metrics": {str(b): {"accuracy": a, "n": 10, "loss": math.nan} for b, a in accuracies.items()}, **fields})


def test_write_json_is_sorted_strict_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"b": 1, "a": {"z": math.nan, "y": [1.5, math.inf]}})
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"') and text.index('"y"') < text.index('"z"')
    assert json.loads(text) == {"a": {"y": [1.5, "inf"], "z": None}, "b": 1}   # the one rule of harness.runs.io
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_read_json_treats_a_torn_file_as_absent(tmp_path):
    (tmp_path / "torn.json").write_text('{"status": "o')
    assert read_json(tmp_path / "torn.json") is None
    assert read_json(tmp_path / "missing.json") is None


def test_manifest_written_once_and_guards_against_another_grid(tmp_path):
    rundir = RunDir(tmp_path)
    rundir.prepare({"experiments": [1]}, "harness run a.yaml --out x")
    manifest = read_json(tmp_path / "manifest.json")
    assert manifest["config"] == {"experiments": [1]} and manifest["command"] == "harness run a.yaml --out x"
    assert manifest["versions"]["torch"] and "git_commit" in manifest
    rundir.prepare({"experiments": [1]}, "harness run a.yaml --out x --seeds 0")   # same grid, narrowed: fine
    assert read_json(tmp_path / "manifest.json")["command"] == "harness run a.yaml --out x"
    with pytest.raises(ConfigError, match="holds runs of a different grid"):
        rundir.prepare({"experiments": [2]}, "harness run b.yaml --out x")


def test_prepare_removes_files_left_by_killed_writers(tmp_path):
    rundir = RunDir(tmp_path)
    rundir.prepare({}, "c")
    (rundir.runs / ".x.json.tmp-123").write_text("{")
    (rundir.origin / ".abc.tmp-9").mkdir()
    write_json(rundir.runs / "kept.json", {"status": "ok"})
    rundir.prepare({}, "c")
    assert sorted(p.name for p in rundir.runs.iterdir()) == ["kept.json"]
    assert list(rundir.origin.iterdir()) == []


def test_done_needs_every_requested_budget_and_success_clears_failure(tmp_path):
    rundir = RunDir(tmp_path)
    rundir.prepare({}, "c")
    rundir.write(record("r1", "ported", 0, {}, status="failed", error={"message": "boom"}))
    assert rundir.has_failed("r1") and not rundir.done("r1", (0,))
    rundir.write(record("r1", "ported", 0, {0: 0.5, 10: 0.6}))
    assert rundir.done("r1", (0, 10)) and rundir.done("r1", (10,)) and not rundir.has_failed("r1")
    assert not rundir.done("r1", (0, 10, 20))
    rundir.write(record("h", "host", 0, {0: 0.4}))
    assert rundir.done("h", ())


def test_one_driver_per_directory(tmp_path):
    first = RunDir(tmp_path)
    with first.lock():
        with pytest.raises(HubportError, match="another harness run is using"):
            with RunDir(tmp_path).lock():
                pass
    with RunDir(tmp_path).lock():   # released when the holder is done
        pass


def test_load_table_has_a_row_per_finished_run_and_budget(tmp_path):
    rundir = RunDir(tmp_path)
    rundir.prepare({}, "c")
    rundir.write(record("p0", "ported", 0, {0: 0.9, 10: 0.95}))
    rundir.write(record("s0", "scratch", 0, {0: 0.5, 10: 0.7}))
    rundir.write(record("h0", "host", 0, {0: 0.55}))
    rundir.write(record("x", "sampled", 0, {}, status="failed", error={"message": "boom"}))
    table = load_table(tmp_path)
    assert tuple(table.columns) == COLUMNS
    assert len(table) == 5
    row = table[(table.condition == "ported") & (table.budget == 10)].iloc[0]
    assert (row.accuracy, row.pair, row.data, row.family, row.library, row.seed, row.run_id) == \
        (0.95, "t5 -> flan", "sst2 -> rt", "lora", "peft", 0, "p0")
    assert table[table.condition == "host"].budget.tolist() == [0]
    assert str(table.budget.dtype) == "int64" and str(table.accuracy.dtype) == "float64"


def test_load_table_of_an_empty_directory_has_the_columns(tmp_path):
    table = load_table(tmp_path)
    assert tuple(table.columns) == COLUMNS and table.empty
