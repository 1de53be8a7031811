"""`hubport port --evaluate DATA [--train-steps N]`: the harness's engine evaluates (and trains) the port."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hubport.cli import app
from tests.fixtures.tiny import tiny_study  # noqa: F401  (fixture)

runner = CliRunner()
TASK = ["--template", "sentiment: {text}", "--labels", "negative,positive"]


@pytest.fixture(scope="module")
def trained(tiny_study, tmp_path_factory):  # noqa: F811
    """A LoRA trained on the originating tiny host with the engine, saved by peft."""
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.modules import ModuleSpec, attach_new, load_host, save_module
    from hubport.engine.train import TrainConfig, train

    spec = ModuleSpec.of("lora", "peft", {"r": 4, "lora_alpha": 8, "target_modules": ["q", "v"]})
    model, tok = load_host(tiny_study.origin)
    model = attach_new(model, spec, seed=0)
    task = load_task(DataSpec(source=str(tiny_study.data)), tok)
    train(model, task, 30, TrainConfig(lr=5e-3, batch_size=8, mixed_precision="no"), seed=0)
    out = tmp_path_factory.mktemp("trained") / "lora"
    save_module(model, spec, out)
    return out, spec


def _evaluate_directly(module_dir, host, data) -> float:
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.evaluation import evaluate
    from hubport.engine.modules import ModuleSpec, attach_saved, load_host

    model, tok = load_host(host)
    model = attach_saved(model, ModuleSpec.of("lora", "peft", {}), module_dir)
    return float(evaluate(model, load_task(DataSpec(source=str(data)), tok))["accuracy"])


def test_evaluate_records_accuracy_of_the_written_module(trained, tiny_study, tmp_path):  # noqa: F811
    module, _ = trained
    out = tmp_path / "ported"
    result = runner.invoke(app, ["port", str(module), "--to", str(tiny_study.receiving), "--out", str(out),
                                 "--evaluate", str(tiny_study.data), *TASK, "--json"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((out / "hubport.json").read_text())["evaluation"]
    assert evaluation["train_steps"] == 0 and evaluation["n"] == 48
    assert evaluation["accuracy"] == pytest.approx(_evaluate_directly(out, tiny_study.receiving, tiny_study.data))
    (entry,) = evaluation["model_index"]  # zero-shot only: nothing was trained
    assert entry["metrics"][0] == {"type": "accuracy", "value": round(evaluation["accuracy"], 6),
                                   "name": "accuracy, zero-shot"}
    assert entry["dataset"]["type"] == "local" and evaluation["data"]["kind"] == "local"
    assert len(evaluation["data"]["sha256"]) == 64 and str(tiny_study.data) not in entry["dataset"]["name"]


def test_train_steps_train_the_written_module_further(trained, tiny_study, tmp_path):  # noqa: F811
    from hubport.formats import load_tensors, read_module

    module, _ = trained
    out = tmp_path / "ported"
    result = runner.invoke(app, ["port", str(module), "--to", str(tiny_study.receiving), "--out", str(out),
                                 "--evaluate", str(tiny_study.data), *TASK, "--train-steps", "5"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((out / "hubport.json").read_text())["evaluation"]
    assert evaluation["train_steps"] == 5
    before, after = load_tensors(read_module(module)), load_tensors(read_module(out))
    assert any(not before[k].equal(after[k]) for k in before)  # the written module is the further-trained one
    assert evaluation["accuracy"] == pytest.approx(_evaluate_directly(out, tiny_study.receiving, tiny_study.data))
    zero, trained = evaluation["model_index"]  # both results reach the card
    assert zero["metrics"][0]["value"] == round(evaluation["zero_shot"], 6)
    assert trained["metrics"][0]["name"] == "accuracy, after 5 further steps"
    assert "after 5 further steps" in result.output and f"module: {out}" in result.output


def test_the_task_comes_from_the_module_when_not_given(trained, tiny_study, tmp_path):  # noqa: F811
    module, _ = trained
    first, second = tmp_path / "first", tmp_path / "second"
    args = ["--to", str(tiny_study.receiving), "--evaluate", str(tiny_study.data)]
    assert runner.invoke(app, ["port", str(module), "--out", str(first), *args, "--template", "review: {text}",
                               "--labels", "bad,good", "--metric", "macro_f1"]).exit_code == 0
    result = runner.invoke(app, ["port", str(first), "--out", str(second), *args])  # no task options
    assert result.exit_code == 0, result.output
    evaluation = json.loads((second / "hubport.json").read_text())["evaluation"]
    assert (evaluation["template"], evaluation["label_words"], evaluation["metric"]) == (
        "review: {text}", ["bad", "good"], "macro_f1")
    assert evaluation["model_index"][0]["metrics"][0]["type"] == "f1"


@pytest.mark.parametrize("extra, needle, code", [([], "--template and --labels must be given", 8),
                                                 (["--template", "x", "--labels", "a,b"], "has no {text}", 8),
                                                 (["--template", "{text}", "--labels", "a,b", "--metric", "accuracyy"],
                                                  "Did you mean 'accuracy'", 4)])
def test_an_unnamed_or_bad_task_is_one_line(extra, needle, code, trained, tiny_study, tmp_path):  # noqa: F811
    module, _ = trained
    result = runner.invoke(app, ["port", str(module), "--to", str(tiny_study.receiving), "--out", str(tmp_path / "o"),
                                 "--evaluate", str(tiny_study.data), *extra], env={"COLUMNS": "300"})
    assert result.exit_code == code and needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_bad_dataset_leaves_nothing(trained, tiny_study, tmp_path):  # noqa: F811
    module, _ = trained
    result = runner.invoke(app, ["port", str(module), "--to", str(tiny_study.receiving), "--out",
                                 str(tmp_path / "o"), "--evaluate", str(tmp_path / "no-data"), *TASK])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.hubport-")]
