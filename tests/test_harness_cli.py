"""`harness run / analyze / report` end by saying what they did and where it is; a dry run writes nothing."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.fixtures.tiny import tiny_study, write_grid  # noqa: F401  (fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def ran(tiny_study, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("cli")
    grid = write_grid(root / "grid.yaml", tiny_study, families={"lora": {"library": "peft", "config": {
        "r": 4, "lora_alpha": 8, "target_modules": ["q", "v"]}}}, conditions=["ported", "scratch"], budgets=[0, 2])
    out = root / "out"
    result = runner.invoke(app, ["run", str(grid), "--out", str(out)], env={"COLUMNS": "300"})
    return grid, out, result


def test_dry_run_writes_nothing(ran, tmp_path):
    grid, _, _ = ran
    out = tmp_path / "never"
    result = runner.invoke(app, ["run", str(grid), "--out", str(out), "--dry-run"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "nothing was written" in result.output and not out.exists()
    assert len([line for line in result.output.splitlines() if line.startswith("tiny")]) >= 6
    assert "no step rate measured" in result.output


def test_dry_run_estimates_the_time_from_measured_rates(ran):
    grid, out, _ = ran
    more = runner.invoke(app, ["run", str(grid), "--out", str(out), "--dry-run", "--seeds", "0,1,2"],
                         env={"COLUMNS": "300"})
    assert more.exit_code == 0, more.output
    assert re.search(r"0 runs to do, 0 training steps, 0 evaluations: about 0\.0 min at the \d+\.\d{3} s/step",
                     more.output)


def test_run_ends_with_the_records_and_the_next_step(ran):
    _, out, result = ran
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-2].startswith("done: 6 new, 0 already done")
    assert lines[-1] == f"records -> {out / 'runs'}; next: harness analyze {out}"


def test_analyze_prints_every_comparison_and_the_files(ran):
    _, out, _ = ran
    result = runner.invoke(app, ["analyze", str(out), "--n-boot", "200"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "ported − scratch" in result.output and "verdict" in result.output
    assert result.output.strip().splitlines()[-1].endswith(f"{out / 'analysis.json'}, {out / 'analysis.csv'}")
    as_json = json.loads(runner.invoke(app, ["analyze", str(out), "--n-boot", "200", "--json"]).output)
    assert as_json["comparisons"] == 2 and str(out / "analysis.csv") in as_json["files"]


def test_report_names_the_html_and_the_figures(ran):
    _, out, _ = ran
    result = runner.invoke(app, ["report", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"{out / 'report.html'} (open it in a browser)" in result.output
    assert "differences.png" in result.output and (out / "figures" / "differences.png").is_file()
    files = json.loads(runner.invoke(app, ["report", str(out), "--json"]).output)
    assert files["html"] == str(out / "report.html") and len(files["figures"]) >= 2


@pytest.mark.parametrize("command", ["analyze", "report"])
def test_a_folder_that_is_no_run_directory_is_named(command, tmp_path):
    result = runner.invoke(app, [command, str(tmp_path / "nonexistent")], env={"COLUMNS": "300"})
    assert result.exit_code == 8 and "is not a run directory" in result.output
    assert "common seeds" not in result.output and "Traceback" not in result.output


def test_a_bar_inside_each_job_shows_its_step_and_loss(tiny_study, tmp_path):  # noqa: F811
    import io
    import math

    from rich.console import Console

    from harness.grid.spec import expand, load_grid
    from harness.runs.executors import Job, run_grid, run_job
    from hubport.terminal import listening

    grid = load_grid(write_grid(tmp_path / "g.yaml", tiny_study, families={"lora": {"library": "peft", "config": {
        "r": 4}}}, conditions=["scratch"], budgets=[0, 40], seeds=[0, 1]))
    first, second = expand(grid)
    seen = []
    with listening(lambda step, loss: seen.append((step, float(loss)))):
        record = run_job(Job("run", first), str(tmp_path / "direct"))["record"]
    assert record.status == "ok" and [s for s, _ in seen] == list(range(1, 41))
    assert all(math.isfinite(v) for _, v in seen)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=220, color_system=None)
    summary = run_grid([second], tmp_path / "out", config=grid.to_dict(), command="t", console=console)
    assert summary.ok == 1 and second.run_id in screen.getvalue()  # the job's own bar was drawn
