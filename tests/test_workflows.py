"""The GitHub workflows validate against the GitHub workflow schema and do what the README promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).parent.parent / ".github" / "workflows"
LINT = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, *map(str, paths)], capture_output=True, text=True, timeout=120)


def _load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_workflows_pass_the_schema():
    result = _lint(WORKFLOWS / "ci.yml", WORKFLOWS / "benchmark.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    shutil.copy(WORKFLOWS / "ci.yml", broken)
    broken.write_text(broken.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert _lint(broken).returncode != 0


def test_ci_runs_make_test_on_push_and_pull_request_and_demo_on_schedule():
    ci = _load("ci.yml")
    assert {"push", "pull_request", "schedule"} <= set(ci["on"])
    test_steps = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "make test" in test_steps
    setup = next(s for s in ci["jobs"]["test"]["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"
    assert any("make demo" in s.get("run", "") for s in ci["jobs"]["demo"]["steps"])
    assert "schedule" in ci["jobs"]["demo"]["if"]


@pytest.mark.parametrize("needle", ["harness run", "harness report", "--push", "harness table"])
def test_benchmark_runs_the_grid_reports_and_refreshes_the_table(needle):
    bench = _load("benchmark.yml")
    assert {"workflow_dispatch", "schedule"} <= set(bench["on"])
    assert bench["on"]["workflow_dispatch"]["inputs"]["config"]["default"] == "configs/paper.yaml"
    job = bench["jobs"]["grid"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert job["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}" and "vars." in job["env"]["RESULTS_REPO"]
    assert any(needle in s.get("run", "") for s in job["steps"])
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    assert any(u.startswith("peter-evans/create-pull-request") for u in uses)
