"""`hubport port --evaluate DATA [--train-steps N]`: the harness's own training and evaluation, on the port.

It runs inside `port`, on the module in its temporary folder, so the folder that appears (and what is pushed) is
the module that was evaluated: further-trained when --train-steps asked for it.
"""

from __future__ import annotations

from pathlib import Path

TASK_TYPE = {"type": "text2text-generation", "name": "Sentiment (rank classification)"}


def evaluate_module(module_dir: Path, host_dir: Path, dataset: str, *, train_steps: int = 0, seed: int = 0,
                    template: str = "sentiment: {text}", label_words: tuple[str, ...] = ("negative", "positive"),
                    max_eval: int | None = None) -> dict:
    """Accuracy of the module on `dataset` (zero-shot, and after `train_steps` further steps, saved in place)."""
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.evaluation import evaluate
    from hubport.engine.modules import ModuleSpec, attach_saved, load_host, save_module, saved_module_family
    from hubport.engine.train import TrainConfig, train
    from hubport.formats import read_module

    library = read_module(module_dir).library
    spec = ModuleSpec.of(saved_module_family(module_dir), library, {})
    model, tokenizer = load_host(host_dir)
    model = attach_saved(model, spec, module_dir)
    task = load_task(DataSpec(source=dataset, template=template, label_words=tuple(label_words),
                              max_eval=max_eval), tokenizer)
    result = {"dataset": dataset, "split": task.spec.eval_split, "n": len(task.eval), "template": template,
              "label_words": list(label_words), "metric": "accuracy", "train_steps": train_steps, "seed": seed,
              "zero_shot": float(evaluate(model, task)["accuracy"])}
    result["accuracy"] = result["zero_shot"]
    if train_steps > 0:
        stats = train(model, task, train_steps, TrainConfig(), seed=seed)
        result["accuracy"] = float(evaluate(model, task)["accuracy"])
        result["train_seconds"] = float(stats.get("seconds", 0.0))
        save_module(model, spec, module_dir)
    result["model_index"] = [model_index_entry(result)]
    return result


def model_index_entry(result: dict) -> dict:
    """One model-index result for the card (huggingface_hub parses it into an EvalResult)."""
    name = "accuracy" if not result["train_steps"] else f"accuracy after {result['train_steps']} further steps"
    return {"task": TASK_TYPE,
            "dataset": {"type": result["dataset"], "name": result["dataset"], "split": result["split"]},
            "metrics": [{"type": "accuracy", "value": round(result["accuracy"], 6), "name": name}]}
