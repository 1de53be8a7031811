"""The harness's cross-lineage conditions: ported:distill (a module distilled onto the receiving host, budget 0
after distillation), its compute-matched baseline scratch:matched, and ported:force (the copy forced past the
lineage check), on a tiny pair of hosts pretrained apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.grid.spec import expand, load_grid, parse_grid
from harness.runs.executors import run_grid
from harness.runs.io import read_json
from harness.runs.record import RunRecord
from tests.fixtures.tiny import build_hosts, grid_dict, tiny_study, write_grid  # noqa: F401  (fixture)

LORA = {"lora": {"library": "peft", "config": {"r": 2, "lora_alpha": 4, "target_modules": ["q", "v"]}}}
CONDITIONS = ["ported:copy", "ported:force", "ported:distill", "scratch", "scratch:matched"]
STEPS = 3


def _records(out: Path) -> dict[str, dict]:
    return {r["spec"]["condition"]: r for r in (read_json(p) for p in (out / "runs").glob("*.json"))}


def _distilled_module(out: Path) -> bytes:
    [port] = [p.parent for p in (out / "ported").glob("*/port.json") if read_json(p)["method"][0] == "distill"]
    return b"".join(f.read_bytes() for f in sorted((port / "module").glob("*.safetensors")))


def _grid(root: Path, study, unrelated: Path, receiving_data: Path | None = None, **overrides) -> Path:
    datasets = {name: {"source": str(path), "template": "sentiment: {text}"}
                for name, path in (("toy", study.data), ("rec", receiving_data or study.data))}
    return write_grid(root / "grid.yaml", study, hosts={"a": str(study.origin), "u": str(unrelated)},
                      pairs=["a -> u"], families=LORA, conditions=CONDITIONS, seeds=[0], budgets=[0, STEPS],
                      datasets=datasets, data_pairs=["toy -> rec"],
                      distill={"steps": STEPS, "temperature": 2.0, "lr": 5e-3}, **overrides)


@pytest.fixture(scope="module")
def unrelated(tiny_study, tmp_path_factory):  # noqa: F811
    import torch

    torch.set_num_threads(1)
    host, _ = build_hosts(tmp_path_factory.mktemp("apart") / "hosts", seed=7)
    return host


@pytest.fixture(scope="module")
def distill_run(tiny_study, unrelated, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("distill")
    grid = load_grid(_grid(root, tiny_study, unrelated))
    summary = run_grid(expand(grid), root / "out", config=grid.to_dict(), command="test")
    return root / "out", summary


def test_across_lineages_the_copy_is_refused_and_force_and_distill_run(distill_run):
    out, summary = distill_run
    assert (summary.ok, summary.refused, summary.failed) == (4, 1, 0)
    records = _records(out)
    assert records["ported:copy"]["status"] == "refused"
    forced = records["ported:force"]
    assert forced["status"] == "ok" and forced["port"]["method"] == ["force", "copy"]
    assert forced["port"]["report"]["forced"] is True


def test_the_distilled_run_records_its_unlabelled_steps_and_seconds(distill_run):
    out, _ = distill_run
    record = RunRecord.load(next((out / "runs").glob("*ported_distill*.json")))
    assert record.spec["condition"] == "ported:distill" and record.spec["distill"]["steps"] == STEPS
    d = record.result_info.distill
    assert d["steps"] == STEPS and d["seconds"] > 0 and d["labels_used"] is False and d["init"] == "fresh"
    assert 0 <= d["agreement_after"] <= 1 and d["kl_after"] >= 0 and d["data"]["n"] == 96
    assert record.result_info.port["method"] == ["distill", "fresh"] and record.result_info.fidelity
    assert set(record.result_info.metrics) == {"0", str(STEPS)}


def test_the_matched_baseline_is_scratch_with_the_distillation_steps_trained_first(distill_run):
    out, _ = distill_run
    records = _records(out)
    matched, scratch = records["scratch:matched"], records["scratch"]
    assert matched["distill"]["steps"] == STEPS and matched["distill"]["labels_used"] is True
    assert "distill" not in scratch["spec"] and scratch["distill"] is None
    # budget 0 of the matched baseline is scratch after STEPS labelled steps: the same run order, bit for bit
    assert matched["metrics"]["0"]["predictions"] == scratch["metrics"][str(STEPS)]["predictions"]
    assert matched["metrics"]["0"]["accuracy"] == scratch["metrics"][str(STEPS)]["accuracy"]
    assert matched["metrics"]["0"]["train_seconds"] == 0.0 and matched["metrics"][str(STEPS)]["train_seconds"] > 0


def test_labels_never_reach_the_distilled_module(distill_run, tiny_study, unrelated, tmp_path):  # noqa: F811
    out, _ = distill_run
    data = tmp_path / "shuffled"
    data.mkdir()
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in (tiny_study.data / f"{split}.jsonl").read_text().splitlines()]
        rows = [{**r, "label": 1 - r["label"]} for r in rows]   # every label flipped
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    grid = load_grid(_grid(tmp_path, tiny_study, unrelated, receiving_data=data))   # the teacher is the same
    specs = [s for s in expand(grid) if s.condition == "ported:distill"]
    summary = run_grid(specs, tmp_path / "out", config=grid.to_dict(), command="test")
    assert summary.ok == 1
    assert _distilled_module(tmp_path / "out") == _distilled_module(out)


def test_the_distill_key_leaves_other_conditions_run_ids_alone(tiny_study, unrelated, tmp_path):  # noqa: F811
    plain = grid_dict(tiny_study, conditions=["scratch", "ported:distill"], seeds=[0])
    keyed = {**plain, "defaults": {**plain["defaults"], "distill": {"steps": 7}}}
    ids = [{s.condition: s.run_id for s in expand(parse_grid(g, tmp_path))} for g in (plain, keyed)]
    assert ids[0]["scratch"] == ids[1]["scratch"] and ids[0]["ported:distill"] != ids[1]["ported:distill"]
    without = grid_dict(tiny_study, conditions=["scratch"], seeds=[0])
    assert "distill" not in parse_grid(without, tmp_path).to_dict()["experiments"][0]


def test_distill_data_defaults_to_the_receiving_train_texts_and_resolves_a_reference(tiny_study, tmp_path):  # noqa: F811
    raw = grid_dict(tiny_study, conditions=["ported:distill"], seeds=[0],
                    datasets={"toy": {"source": str(tiny_study.data), "text_field": "text", "train_split": "train"}})
    [spec, *_] = expand(parse_grid(raw, tmp_path))
    assert spec.distill_data() == {"source": str(tiny_study.data), "split": "train", "text_field": "text"}
    (tmp_path / "texts").mkdir()
    raw["defaults"]["distill"] = {"data": "./texts"}
    [spec, *_] = expand(parse_grid(raw, tmp_path))
    assert spec.distill_data()["source"] == str((tmp_path / "texts").resolve())


@pytest.mark.parametrize(("distill", "message"), [
    ({"step": 3}, "experiments.tiny.distill"),
    ({"steps": 0}, "experiments.tiny.distill.steps must be at least 1"),
    ({"temperature": 0}, "experiments.tiny.distill.temperature must be > 0"),
])
def test_a_bad_distill_key_names_itself(tiny_study, tmp_path, distill, message):  # noqa: F811
    with pytest.raises(ConfigError) as err:
        parse_grid(grid_dict(tiny_study, distill=distill), tmp_path)
    assert message in err.value.one_line() and "\n" not in err.value.one_line()
