"""What a newcomer sees: final lines that say what happened, --version, the exit-code table, cards that follow
the Hub's conventions, a quiet terminal, and a report that a browser renders with its headline and captions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubport import __version__
from hubport.cli import EXIT_CODES, EXIT_TABLE, app
from tests.fixtures.tiny import tiny_study  # noqa: F401  (fixture)
from tests.test_hub_port import published  # noqa: F401  (fixture)
from tests.test_port_evaluate import TASK, trained  # noqa: F401  (fixture)

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_version_and_the_documented_exit_codes():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"hubport {__version__}"
    documented = {code for code, _ in EXIT_TABLE}
    assert set(EXIT_CODES.values()) | {0, 1, 2, 70, 130} == documented
    help_text = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    readme = (ROOT / "README.md").read_text()
    for code, meaning in EXIT_TABLE:
        assert meaning in help_text and f"| {code} | {meaning} |" in readme


def test_nothing_to_do_is_a_usage_error_apart_from_hubports_own(tmp_path):
    result = runner.invoke(app, ["port", str(tmp_path), "--to", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to do" in result.output


def test_help_keeps_brackets_and_every_option_has_help():
    text = runner.invoke(app, ["port", "--help"], env={"COLUMNS": "200"}).output
    options = text[text.index("Options"):]
    assert "owner/name[@rev]" in text and "<str>" not in options and "<bool>" not in options.split("--help")[0]
    assert "Examples" in text and "--evaluate" in text
    import click
    import typer.main

    for command in typer.main.get_command(app).commands.values():
        for param in command.params:
            assert not isinstance(param, click.Option) or param.help, (command.name, param.name)


def test_env_names_versions_and_never_a_token():
    result = runner.invoke(app, ["env", "--json"], env={"HF_TOKEN": "hf_secret_value"})
    info = json.loads(result.output)
    assert info["hubport"] == __version__ and info["packages"]["torch"] and info["token"] == "set"
    assert "hf_secret_value" not in result.output


@pytest.mark.parametrize("kept", [True, False])
def test_port_push_ends_with_repo_commit_and_url(kept, published, hub_server, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    repo = f"hubport-e2e/final-{int(kept)}-{tmp_path.name[-6:]}"
    out = ["--out", str(tmp_path / "local")] if kept else []
    result = runner.invoke(app, ["port", published["peft-lora"], "--to", published["relu_a2"], *out, "--push", repo],
                           env={"HF_TOKEN": hub_server.write_token, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    sha = HfApi(token=hub_server.read_token).model_info(repo).sha
    lines = result.output.strip().splitlines()
    assert lines[-2] == f"pushed {repo} at commit {sha}"
    assert lines[-1].startswith("url: http://127.0.0.1:") and lines[-1].endswith(repo)
    assert (f"module: {tmp_path / 'local'}" in result.output) == kept
    assert not kept or (tmp_path / "local" / "hubport.json").is_file()


def test_push_ends_with_commit_and_url(published, hub_server, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    folder, repo = tmp_path / "m", f"hubport-e2e/push-{tmp_path.name[-6:]}"
    env = {"HF_TOKEN": hub_server.write_token, "COLUMNS": "300"}
    assert runner.invoke(app, ["port", str(published["peft-lora:local"]), "--to", str(published["relu_a2"]),
                               "--out", str(folder)], env=env).exit_code == 0
    result = runner.invoke(app, ["push", str(folder), repo, "--json"], env=env)
    assert result.exit_code == 0, result.output
    pushed = json.loads(result.output)
    assert pushed["commit"] == HfApi(token=hub_server.read_token).model_info(repo).sha
    assert pushed["url"].endswith(repo) and pushed["commit"] in pushed["commit_url"]
    text = runner.invoke(app, ["push", str(folder), repo], env=env).output.strip().splitlines()
    assert text[0].startswith(f"pushed {folder} to {repo} at commit ") and text[1].startswith("url: http")


def test_card_of_a_pushed_evaluated_module(trained, tiny_study, hub_server, tmp_path):  # noqa: F811
    from huggingface_hub import ModelCard

    module, _ = trained
    source = Path(shutil.copytree(module, tmp_path / "source"))
    (source / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: en\ndatasets:\n- stanfordnlp/sst2\n"
                                      "pipeline_tag: text2text-generation\n---\n# a source card\n")
    repo = f"hubport-e2e/card-{tmp_path.name[-6:]}"
    result = runner.invoke(app, ["port", str(source), "--to", str(tiny_study.receiving), "--push", repo,
                                 "--evaluate", str(tiny_study.data), *TASK, "--train-steps", "3"],
                           env={"HF_TOKEN": hub_server.write_token, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    card = ModelCard.load(repo, token=hub_server.read_token)
    data = card.data
    assert data.license == "apache-2.0" and data.language == "en" and data.pipeline_tag == "text2text-generation"
    assert data.datasets == ["stanfordnlp/sst2"]  # the local evaluation data is not posed as a dataset id
    names = [r.metric_name for r in data.eval_results]
    assert names == ["accuracy, zero-shot", "accuracy, after 3 further steps"]
    assert {r.dataset_type for r in data.eval_results} == {"local"}
    assert "trained 3 further steps" in card.text and "revision=REVISION" in card.text
    assert "pypi.org" not in card.text and str(tiny_study.data) not in card.text  # local data: named, not a path
    assert re.search(r"sha256 `[0-9a-f]{16}`", card.text)


def test_port_verify_of_an_adapters_module_prints_only_hubports_lines(hosts, tmp_path):
    from tests.fixtures.hosts import RECIPES, train_module

    _, module = train_module(hosts["relu_a"], RECIPES["adapters-seq-bn"], tmp_path / "m", use_safetensors=True)
    done = subprocess.run([sys.executable, "-m", "hubport.cli", "port", str(module), "--to", str(hosts["relu_a2"]),
                           "--out", str(tmp_path / "o"), "--verify"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "300"}, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["ported", "verified:", "module:"], lines


def test_report_renders_in_a_browser_with_headline_and_captions(tmp_path):
    from harness.analysis.analyze import AnalysisOptions, analyze_table
    from harness.report.report import write_report
    from harness.report.screenshot import find_chromium, rendered_dom, screenshot
    from tests.test_analysis import make_table

    if find_chromium() is None:
        pytest.skip("no Chromium here (apt-get install chromium): the report is not rendered in a browser")
    table = make_table(budgets=(0, 100), conditions=("ported", "scratch", "host"))
    write_report(tmp_path, analyze_table(table, AnalysisOptions(n_boot=200)))
    dom = rendered_dom(tmp_path / "report.html")
    first = dom.index("<h2>")
    assert dom[first:].startswith("<h2>Headline</h2>") and dom.index("<table>") < dom.index("<h2>Summary</h2>")
    headline = dom[dom.index("<table>"):dom.index("</table>")]
    assert "budget 0" in headline and "budget 100" in headline and re.search(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", headline)
    figures = sorted((tmp_path / "figures").glob("*.png"))
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", dom)
    assert len(captions) == len(figures) >= 3 and all(len(c) > 40 for c in captions)
    assert "inf]" not in dom and "∞" not in dom
    shot = screenshot(tmp_path / "report.html", tmp_path / "shot.png", height=1200)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_check_shows_full_tensor_names_at_120_columns(hosts, tmp_path):
    from tests.fixtures.hosts import RECIPES, train_module

    _, module = train_module(hosts["relu_a"], RECIPES["peft-lora"], tmp_path / "m", use_safetensors=True)
    result = runner.invoke(app, ["check", str(module), "--to", str(hosts["relu_a2"]), "--all"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    prefix = re.search(r"tensor names below start with (\S+)", result.output).group(1)
    from hubport.formats import read_module

    for key in read_module(module).tensors:
        if key.startswith(prefix):
            assert f"│ {key[len(prefix):]} " in result.output, key  # whole, once the shared prefix is said
    assert "…" not in result.output


def test_serve_takes_tokens_from_the_environment_never_argv_and_announces_json(tmp_path):
    assert runner.invoke(app, ["serve", "--root", str(tmp_path), "--token", "t"]).exit_code == 2
    proc = subprocess.Popen([sys.executable, "-m", "hubport.cli", "serve", "--root", str(tmp_path / "hub"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HUBPORT_WRITE_TOKENS": "w1,w2", "HUBPORT_READ_TOKENS": "r1"})
    try:
        announced = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert announced["url"].startswith("http://127.0.0.1:") and announced["write_tokens"] == 2
    assert announced["read_tokens"] == 1 and "w1" not in json.dumps(announced)
