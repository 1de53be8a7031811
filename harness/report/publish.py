"""Share a study: records and report to a Hub dataset repo in one commit, and model-index entries for a card.

One commit means a reader never sees records from one analysis next to a report from another. The model-index
entries use huggingface_hub's EvalResult, so a ported module's card shows each condition's mean accuracy with
its interval and seed count, beside the data set it was measured on.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from harness.analysis.analyze import Analysis, ConditionSummary, condition_order
from harness.errors import StatsError
from hubport.errors import NotFoundError

REPORT_FILES = ("analysis.json", "analysis.csv", "report.md", "report.html", "manifest.json")
TASKS = ("text2text-generation", "text-classification")


def dataset_card(report_md: str, repo_id: str) -> str:
    """README.md for the results repo: the report itself, under a header the dataset viewer understands."""
    header = ("---\nconfigs:\n- config_name: records\n  data_files: data/records.parquet\n"
              "tags:\n- hubport\n- peft\n- portability\n"
              f"pretty_name: {repo_id.split('/')[-1]} (hubport portability study)\n---\n\n")
    return header + report_md


def _operations(run_dir: Path, repo_id: str) -> list:
    from huggingface_hub import CommitOperationAdd

    from harness.analysis.tables import load_table

    buffer = io.BytesIO()
    load_table(run_dir).to_parquet(buffer, index=False)
    ops = [CommitOperationAdd("data/records.parquet", buffer.getvalue()),
           CommitOperationAdd("README.md", dataset_card((run_dir / "report.md").read_text("utf-8"), repo_id).encode())]
    ops += [CommitOperationAdd(name, str(run_dir / name)) for name in REPORT_FILES if (run_dir / name).is_file()]
    ops += [CommitOperationAdd(f"figures/{p.name}", str(p)) for p in sorted((run_dir / "figures").glob("*.png"))]
    return ops


def push_results(run_dir: Path, repo_id: str, *, token: str | None = None, private: bool = False,
                 endpoint: str | None = None) -> str:
    """Push records (data/records.parquet), analysis and report to dataset repo_id in one commit; its URL.

    Writes the report first when the run folder has none. The token defaults to huggingface_hub's own lookup
    (HF_TOKEN or the saved login); the endpoint to HF_ENDPOINT.
    """
    from huggingface_hub import HfApi

    from hubport.hub import hub_errors

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotFoundError(f"run folder {run_dir} does not exist", "pass the folder `harness run` wrote")
    if not (run_dir / "report.md").is_file():
        from harness.report.report import write_report

        write_report(run_dir)
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(f"push to dataset {repo_id}"):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.create_commit(repo_id, _operations(run_dir, repo_id), repo_type="dataset",
                                 commit_message="hubport harness: run records, analysis and report")
    return str(info.commit_url)


def _select(analysis: Analysis, family: str, pair: str, data: str, library: str | None,
            budget: int | None) -> list[ConditionSummary]:
    rows = [s for s in analysis.conditions if s.cell.family == family and s.cell.pair == pair
            and s.cell.data == data and (library is None or s.cell.library == library)
            and (budget is None or s.cell.budget == budget)]
    if not rows:
        raise StatsError(f"no results for {family} · {pair} · {data}" + (f" · budget {budget}" if budget else ""),
                         "check the family, pair and data names in analysis.json")
    origins = {(s.cell.experiment, s.cell.library) for s in rows}
    if len(origins) > 1:
        raise StatsError(f"{family} · {pair} · {data} has several experiments/libraries {sorted(origins)}",
                         "pass library= (and analyse one experiment at a time)")
    return rows


def _num(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None  # plain floats: the card is YAML


def model_index(analysis: Analysis, *, family: str, pair: str, data: str, dataset_id: str, dataset_name: str,
                library: str | None = None, budget: int | None = None, task: str = "text2text-generation",
                model_name: str | None = None) -> list[dict]:
    """model-index entries (one metric per condition and budget: the mean, its interval in the name)."""
    from huggingface_hub.repocard_data import EvalResult, eval_results_to_model_index

    if task not in TASKS:
        raise StatsError(f"unknown task '{task}' for a model-index", f"choose one of {', '.join(TASKS)}")
    rows = _select(analysis, family, pair, data, library, budget)
    order = {c: i for i, c in enumerate(condition_order({s.condition for s in rows}))}
    rows.sort(key=lambda s: (s.cell.budget, order[s.condition]))
    metric, ci = analysis.options.metric, analysis.options.ci
    results = []
    for s in rows:
        half = (s.ci[1] - s.ci[0]) / 2 * 100
        spread = f" ± {half:.1f}" if math.isfinite(half) else ""
        name = (f"{s.condition}, budget {s.cell.budget}: {s.mean * 100:.1f}{spread} "
                f"({ci:.0%} CI, {s.n} seeds)")
        results.append(EvalResult(task_type=task, dataset_type=dataset_id, dataset_name=dataset_name,
                                  metric_type=metric, metric_value=round(float(s.mean), 4), metric_name=name,
                                  metric_args={"condition": s.condition, "budget": int(s.cell.budget), "seeds": int(s.n),
                                               "ci_low": _num(s.ci[0]), "ci_high": _num(s.ci[1])}))
    return eval_results_to_model_index(model_name or f"{family} ({pair})", results)
