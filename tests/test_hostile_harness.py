"""Hostile harness inputs: run records and analysis files that are not what the harness wrote, and a --out that
is a file. Each is one line naming the file (FormatError: exit 4; OutputError: exit 6), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import app
from harness.runs.rundir import RunDir
from tests.fixtures.hostile import Sandbox
from tests.test_records import record

GRID = Path(__file__).parent.parent / "configs" / "demo.yaml"


def _run_dir(tmp: Path) -> Path:
    rundir = RunDir(tmp / "run")
    rundir.prepare({}, "harness run")
    for seed in range(3):
        rundir.write(record(f"p{seed}", "ported", seed, {0: 0.8 + seed / 100, 10: 0.9}))
        rundir.write(record(f"s{seed}", "scratch", seed, {0: 0.5, 10: 0.6 + seed / 100}))
    return rundir.root


def _bad(name: str, data: object):
    def write(run: Path) -> str:
        path = run / "runs" / "bad.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    write.__name__ = name
    return write


GOOD = record("x", "ported", 9, {0: 0.5}).to_dict()
RECORDS = [
    _bad("list", [1, 2]), _bad("string", '"ok"'), _bad("no-status", {"run_id": "x"}),
    _bad("no-metrics", {**GOOD, "metrics": None}), _bad("empty-metrics", {**GOOD, "metrics": {}}),
    _bad("spec-string", {**GOOD, "spec": "lora"}), _bad("spec-no-family", {**GOOD, "spec": {**GOOD["spec"],
                                                                                              "family": None}}),
    _bad("seed-string", {**GOOD, "spec": {**GOOD["spec"], "seed": "one"}}),
    _bad("accuracy-string", {**GOOD, "metrics": {"0": {"accuracy": "high"}}}),
    _bad("accuracy-missing", {**GOOD, "metrics": {"0": {"n": 3}}}),
    _bad("budget-word", {**GOOD, "metrics": {"zero": {"accuracy": 0.5}}}),
    _bad("metrics-list", {**GOOD, "metrics": [0.5]}), _bad("run-id-int", {**GOOD, "run_id": 5}),
    _bad("refused-no-reason", {**GOOD, "status": "refused"}), _bad("fidelity-list", {**GOOD, "fidelity": [1]}),
    _bad("status-odd", {**GOOD, "status": "exploded"}),
]


@pytest.mark.parametrize("command", ["analyze", "report"])
@pytest.mark.parametrize("make", RECORDS, ids=lambda f: f.__name__)
def test_broken_record_is_named(make, command, tmp_path):
    run = _run_dir(tmp_path)
    path = make(run)
    box = Sandbox(tmp_path)
    args = [command, run] + (["--n-boot", "200"] if command == "analyze" else [])
    box.assert_refused(box.invoke(app, args), 4, path)


def test_torn_record_is_treated_as_not_run(tmp_path):
    """A half-written record (a writer killed before os.replace cannot leave one, but a disk can) is skipped."""
    run = _run_dir(tmp_path)
    (run / "runs" / "torn.json").write_text('{"status": "o')
    result = Sandbox(tmp_path).invoke(app, ["analyze", run, "--n-boot", "200"])
    assert result.exit_code == 0, result.output


ANALYSES = {"empty": "", "corrupt": '{"comparisons": [', "list": "[]", "object-empty": "{}",
            "wrong-types": json.dumps({"options": 5, "conditions": 5, "comparisons": 5, "cell_omnibus": 5,
                                       "family_omnibus": 5, "warnings": 5}),
            "deep": "[" * 100_000 + "]" * 100_000}


@pytest.mark.parametrize("command", ["report", "table"])
@pytest.mark.parametrize("content", list(ANALYSES), ids=list(ANALYSES))
def test_broken_analysis_is_named(content, command, tmp_path):
    run = _run_dir(tmp_path)
    (run / "analysis.json").write_text(ANALYSES[content])
    box = Sandbox(tmp_path)
    args = ["report", run] if command == "report" else ["table", run, "--out", tmp_path / "B.md"]
    box.assert_refused(box.invoke(app, args), 4, "analysis.json")


@pytest.mark.parametrize("where", ["file", "below-file"])
def test_run_out_that_is_a_file(where, tmp_path):
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "plain" if where == "file" else tmp_path / "plain" / "run"
    box = Sandbox(tmp_path)
    result = box.invoke(app, ["run", GRID, "--out", out, "--seeds", "0", "--families", "lora"])
    box.assert_refused(result, 6, str(tmp_path / "plain"))
