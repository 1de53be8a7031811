"""`hubport port --evaluate DATA [--template T --labels a,b --metric M --train-steps N]`: the engine, on the port.

It runs inside `port`, on the module in its temporary folder, so the folder that appears (and what is pushed) is
the module that was evaluated: further-trained when --train-steps asked for it. The task (template, label words,
metric) comes from the options, else from the module's own hubport.json (a module hubport evaluated before names
its task there); nothing is guessed. The data is recorded by identity: a Hub id with the commit the Hub reported,
or a local path with the SHA-256 of its files, never a local path posing as a dataset id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubport.errors import ConfigError, UnknownNameError
from hubport.hub import dataset_commit

TASK_TYPE = {"type": "text2text-generation", "name": "Text classification (rank classification)"}


def _accuracy(labels, predictions) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, predictions))


def _macro_f1(labels, predictions) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro", zero_division=0))


def _mcc(labels, predictions) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, predictions))


METRICS: dict[str, Callable] = {"accuracy": _accuracy, "macro_f1": _macro_f1, "mcc": _mcc}
METRIC_TYPE = {"accuracy": "accuracy", "macro_f1": "f1", "mcc": "matthews_correlation"}


@dataclass(frozen=True)
class EvalTask:
    """What to evaluate on and how: the data (and its identity), the input template, label words, metric."""

    data: str
    template: str
    labels: tuple[str, ...]
    metric: str
    identity: dict

    @classmethod
    def resolve(cls, data: str, *, template: str | None, labels: str | None, metric: str | None,
                module: str | Path | None = None, revision: str | None = None) -> EvalTask:
        """Options first, then the module's hubport.json; refuse (one line) when the task is still unnamed."""
        named = named_task(module, revision) if module is not None and not (template and labels and metric) else {}
        template = template or named.get("template")
        words = tuple(w.strip() for w in labels.split(",")) if labels else tuple(named.get("label_words") or ())
        metric = metric or named.get("metric") or "accuracy"
        if not template or not words:
            missing = " and ".join(n for n, v in (("--template", template), ("--labels", words)) if not v)
            raise ConfigError(f"the module does not name its task, so {missing} must be given",
                              "e.g. --template 'sentiment: {text}' --labels negative,positive")
        if "{text}" not in template:
            raise ConfigError(f"--template '{template}' has no {{text}}", "e.g. --template 'sentiment: {text}'")
        if len(words) < 2 or any(not w for w in words):
            raise ConfigError(f"--labels '{labels}' names fewer than two label words", "e.g. --labels no,yes")
        if metric not in METRICS:
            raise UnknownNameError("metric", metric, METRICS)
        source, identity = data_identity(data)
        return cls(source, template, words, metric, identity)


def named_task(module: str | Path, revision: str | None) -> dict:
    """The task a module's hubport.json names (from an earlier `port --evaluate`), or {}."""
    from hubport.errors import HubportError
    from hubport.sources import fetch_module_at

    try:
        folder = fetch_module_at(module, revision).folder
        evaluation = json.loads((Path(folder) / "hubport.json").read_text()).get("evaluation") or {}
    except (HubportError, OSError, ValueError):
        return {}
    return {k: evaluation[k] for k in ("template", "label_words", "metric") if evaluation.get(k)}


def data_identity(data: str) -> tuple[str, dict]:
    """(what to load, how to record it): a local path with the SHA-256 of its files, or a Hub id and commit."""
    path = Path(data).expanduser()
    if path.exists():
        files = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file())
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.relative_to(path if path.is_dir() else path.parent).as_posix().encode())
            digest.update(f.read_bytes())
        return str(path), {"kind": "local", "path": str(path.resolve()), "sha256": digest.hexdigest(),
                           "label": f"local data {path.name}"}
    repo, _, rev = data.partition("@")
    return repo, {"kind": "hub", "id": repo, "requested_revision": rev or None, "revision": dataset_commit(repo, rev),
                  "label": repo}




def evaluate_module(module_dir: Path, host_dir: Path, task: EvalTask, *, train_steps: int = 0, seed: int = 0,
                    max_eval: int | None = None, console=None) -> dict:
    """The metric of the module on the task (zero-shot, and after `train_steps` further steps, saved in place)."""
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.evaluation import evaluate
    from hubport.engine.modules import ModuleSpec, attach_saved, load_host, save_module, saved_module_family
    from hubport.engine.train import TrainConfig, train
    from hubport.formats import read_module
    from hubport.terminal import step_progress

    library = read_module(module_dir).library
    spec = ModuleSpec.of(saved_module_family(module_dir), library, {})
    model, tokenizer = load_host(host_dir)
    model = attach_saved(model, spec, module_dir)
    loaded = load_task(DataSpec(source=task.data, template=task.template, label_words=task.labels,
                                max_eval=max_eval), tokenizer)
    score = METRICS[task.metric]

    def measure() -> float:
        with _status(console, f"evaluating on {len(loaded.eval)} examples"):
            return score(loaded.eval.labels.tolist(), evaluate(model, loaded)["predictions"])

    result = {"dataset": task.data, "data": task.identity, "split": loaded.spec.eval_split, "n": len(loaded.eval),
              "template": task.template, "label_words": list(task.labels), "metric": task.metric,
              "train_steps": train_steps, "seed": seed, "zero_shot": measure()}
    result[task.metric] = result["zero_shot"]
    if train_steps > 0:
        with step_progress(console, f"training {train_steps} further steps", train_steps) as update:
            stats = train(model, loaded, train_steps, TrainConfig(), seed=seed, on_step=update)
        result[task.metric] = measure()
        result["train_seconds"] = float(stats.get("seconds", 0.0))
        result["train_loss"] = float(stats.get("last_loss", float("nan")))
        save_module(model, spec, module_dir)
    result["model_index"] = model_index_entries(result)
    return result


def _status(console, text: str):
    import contextlib

    return console.status(text) if console is not None else contextlib.nullcontext()


def model_index_entries(result: dict) -> list[dict]:
    """model-index results for the card: zero-shot always, and after further training when there was some."""
    identity = result.get("data") or {"kind": "hub", "id": result["dataset"], "label": result["dataset"]}
    dataset = {"name": identity["label"], "split": result["split"]}
    if identity["kind"] == "hub":
        dataset["type"] = identity["id"]
        if identity.get("revision"):
            dataset["revision"] = identity["revision"]
    else:
        dataset["type"] = "local"
    metric = result.get("metric", "accuracy")
    values = [("zero-shot", result["zero_shot"])]
    if result["train_steps"]:
        values.append((f"after {result['train_steps']} further steps", result[metric]))
    return [{"task": TASK_TYPE, "dataset": dataset,
             "metrics": [{"type": METRIC_TYPE[metric], "value": round(value, 6), "name": f"{metric}, {when}"}]}
            for when, value in values]
