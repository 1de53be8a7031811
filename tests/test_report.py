"""harness.report.report, harness.report.figures and harness.report.publish: files a reader can open, and a push in one commit."""

from __future__ import annotations

import base64
import json
import re

import pytest

from harness.analysis.analyze import AnalysisOptions, analyze_table
from harness.report.publish import model_index, push_results
from harness.report.report import write_report
from tests.test_analysis import make_table

FAST = AnalysisOptions(n_boot=300)


@pytest.fixture(scope="module")
def one_family(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    table = make_table(budgets=(0, 100), conditions=("ported", "ported:weights", "scratch", "sampled", "host"))
    (run_dir / "manifest.json").write_text(json.dumps({"config": {"families": ["lora"]}, "git_commit": "c0ffee1",
                                                       "versions": {"torch": "2.13.0"}, "command": "harness run g.yaml"}))
    analysis = analyze_table(table, FAST)
    return run_dir, table, analysis, write_report(run_dir, analysis)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_markdown_states_verdicts_numbers_and_provenance(one_family):
    run_dir, _, analysis, md_path = one_family
    md = md_path.read_text()
    for c in analysis.comparisons:
        assert c.verdict in md
    assert "ported beats scratch by" in md and "p_holm" in md
    assert "c0ffee1" in md and "harness run g.yaml" in md and "torch 2.13.0" in md
    for w in analysis.warnings:
        assert w in md
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (run_dir / link).is_file()


def test_html_is_self_contained_with_valid_pngs(one_family):
    run_dir, _, analysis, _ = one_family
    html = (run_dir / "report.html").read_text()
    assert 'src="figures' not in html and "<link" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    figures = sorted((run_dir / "figures").glob("*.png"))
    assert len(images) == len(figures) >= 3  # heatmap, learning curves, scores by seed
    for data in images:
        width, height = _png_size(base64.b64decode(data))
        assert 200 < width < 4000 and 150 < height < 6000
    import html as html_lib

    assert all(html_lib.escape(c.verdict) in html for c in analysis.comparisons)


def test_six_families_with_long_condition_names_draw(tmp_path):
    families = ("lora", "ia3", "prefix_tuning", "prompt_tuning", "bottleneck", "compacter")
    table = make_table(families=families, budgets=(0,), seeds=range(4),
                       conditions=("ported", "ported:weights", "scratch"))
    write_report(tmp_path, analyze_table(table, FAST))
    names = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert "heatmap.png" in names and sum(n.startswith("scores-") for n in names) == 6
    heat_w, heat_h = _png_size((tmp_path / "figures" / "heatmap.png").read_bytes())
    assert heat_h > 300  # six rows, not squashed into the one-family size
    md = (tmp_path / "report.md").read_text()
    assert md.count("\n### ") == 6 and "## Across families" in md


def test_report_without_manifest_says_so(tmp_path):
    write_report(tmp_path, analyze_table(make_table(budgets=(0,)), FAST))
    assert "No manifest.json" in (tmp_path / "report.md").read_text()


def test_model_index_round_trips_through_huggingface_hub(one_family):
    from huggingface_hub.repocard_data import model_index_to_eval_results

    _, _, analysis, _ = one_family
    index = model_index(analysis, family="lora", pair="t5-a -> t5-b", data="sst2 -> sst2", dataset_id="sst2",
                        dataset_name="SST-2", budget=100)
    name, results = model_index_to_eval_results(index)
    assert name == "lora (t5-a -> t5-b)"
    assert [r.metric_args["condition"] for r in results] == ["ported", "ported:weights", "scratch", "sampled",
                                                             "host"]
    ported = next(s for s in analysis.conditions if s.condition == "ported" and s.cell.budget == 100)
    assert results[0].metric_value == pytest.approx(ported.mean, abs=1e-4)
    assert results[0].task_type == "text2text-generation" and results[0].dataset_type == "sst2"
    assert "±" in results[0].metric_name and results[0].metric_type == "accuracy"


def test_model_index_rejects_unknown_cells(one_family):
    from harness.errors import StatsError

    with pytest.raises(StatsError):
        model_index(one_family[2], family="ia3", pair="t5-a -> t5-b", data="sst2 -> sst2", dataset_id="sst2",
                    dataset_name="SST-2")


def test_push_results_in_one_commit(one_family, monkeypatch, request):
    try:  # the Hub fixture comes from tests/fixtures/hub.py; skip only if it is missing
        server, repo = request.getfixturevalue("hub_server"), request.getfixturevalue("hub_repo_id")
    except pytest.FixtureLookupError:
        pytest.skip("the hub_server fixture (tests/fixtures/hub.py) is not available")
    import pandas as pd
    from huggingface_hub import HfApi

    import harness.analysis.tables

    run_dir, table, _, _ = one_family
    monkeypatch.setattr(harness.analysis.tables, "load_table", lambda d: table)
    api = HfApi(endpoint=server.url, token=server.write_token)
    api.create_repo(repo, repo_type="dataset")
    before = len(api.list_repo_commits(repo, repo_type="dataset"))
    url = push_results(run_dir, repo, token=server.write_token)
    commits = api.list_repo_commits(repo, repo_type="dataset")
    assert len(commits) == before + 1 and commits[0].commit_id in url
    files = set(api.list_repo_files(repo, repo_type="dataset"))
    assert {"data/records.parquet", "README.md", "report.md", "report.html",
            "figures/differences.png", "manifest.json"} <= files
    path = api.hf_hub_download(repo, "data/records.parquet", repo_type="dataset")
    assert len(pd.read_parquet(path)) == len(table)
    card = api.hf_hub_download(repo, "README.md", repo_type="dataset")
    assert open(card, encoding="utf-8").read().startswith("---\nconfigs:")


def test_push_with_a_read_only_token_is_an_auth_error(one_family, monkeypatch, request):
    try:
        server, repo = request.getfixturevalue("hub_server"), request.getfixturevalue("hub_repo_id")
    except pytest.FixtureLookupError:
        pytest.skip("the hub_server fixture (tests/fixtures/hub.py) is not available")
    import harness.analysis.tables
    from hubport.errors import AuthError

    monkeypatch.setattr(harness.analysis.tables, "load_table", lambda d: one_family[1])
    with pytest.raises(AuthError):
        push_results(one_family[0], repo, token=server.read_token)


def test_report_reads_the_saved_analysis_and_its_options(tmp_path, monkeypatch):
    import harness.analysis.tables
    from harness.analysis.analyze import analyze_dir

    monkeypatch.setattr(harness.analysis.tables, "load_table", lambda d: make_table(budgets=(0,)))
    analyze_dir(tmp_path, AnalysisOptions(n_boot=300, correction="fdr_bh"))
    md = write_report(tmp_path).read_text()
    assert "p_bh" in md and "p_holm" not in md and "Benjamini-Hochberg" in md
