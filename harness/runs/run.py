"""One run of the grid: get the originating module (trained once per grid, cached by content), port it with
hubport's own API, start the receiving host's module as the condition says, then train through the budgets
(cumulatively) and evaluate after each. Returns the record; the caller stores it (harness.runs.rundir).

A port hubport refuses (a copy across lineages, nothing that can be carried) is a result, not a crash: the
run's record has status "refused" and the one-line reason. Ported-like runs also record function-level
fidelity (hubport.crossmap.function_fidelity) of the ported module at budget 0."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from harness.grid.conditions import MATCHED, NEEDS_ORIGIN, PORTED_LIKE, prepare
from harness.grid.spec import RunSpec
from harness.runs.examples import write_examples
from harness.runs.identity import digest, identity, locked
from harness.runs.io import fsync_dir, read_json, write_json
from harness.runs.porting import ensure_fidelity, port_for
from harness.runs.record import Budget, MetaInfo, ResultInfo, RunInfo, RunRecord
from hubport.errors import IncompatibleError
from hubport.terminal import step_listener

ORIGIN_FORMAT = 1   # bump when the way originating modules are trained changes, to invalidate the cache


def execute(spec: RunSpec, out_dir: str | Path) -> RunRecord:
    """Run one cell x condition x seed and return its record (status "ok"); errors propagate to the caller."""
    from accelerate.utils import set_seed

    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.modules import ModuleSpec, load_host
    from hubport.engine.train import TrainConfig, batch_indices, make_accelerator

    out_dir, began, timings = Path(out_dir), time.perf_counter(), {}
    started = datetime.now(UTC).isoformat(timespec="seconds")
    set_seed(spec.seed)   # python, numpy, torch: a run does not depend on what ran before it in the process
    origin, ported_dir, port_info = None, None, None
    if spec.condition in NEEDS_ORIGIN:
        tick = time.perf_counter()
        source, origin = ensure_origin(spec, out_dir)
        timings["origin"] = time.perf_counter() - tick
        try:
            ported_dir, port_info = port_for(spec, source, origin["identity"], out_dir)
        except IncompatibleError as exc:   # LineageError included: hubport says no, and says why
            return refused(spec, exc, origin, started)
        timings["port"] = time.perf_counter() - tick - timings["origin"]
    tick = time.perf_counter()
    model, tokenizer = load_host(spec.host_location(spec.receiving))
    task = load_task(DataSpec(**spec.data_fields(spec.receiving_data)), tokenizer)
    cfg = TrainConfig(**dict(spec.train))
    acc = make_accelerator()   # precision comes per run from TrainConfig
    module = ModuleSpec.of(spec.family.name, spec.family.library, dict(spec.family.config))
    model = prepare(model, spec.condition, module, seed=spec.seed, ported_dir=ported_dir,
                    distribution=spec.sampled.distribution, granularity=spec.sampled.granularity)
    timings["load"] = time.perf_counter() - tick
    fidelity = None
    if spec.condition in PORTED_LIKE:
        tick = time.perf_counter()
        fidelity = ensure_fidelity(spec, source, ported_dir, task)
        timings["fidelity"] = time.perf_counter() - tick
    head_start, distill = _head_start(model, task, spec, cfg, acc, port_info)
    metrics, examples = _budgets(model, task, spec, cfg, acc, start=head_start)
    sidecar = write_examples(out_dir / "runs", spec.run_id, task.eval.labels, examples)
    steps = max(spec.budgets, default=0) + head_start
    order = [batch_indices(len(task.train), cfg.batch_size, spec.seed, s) for s in range(steps)]
    timings["total"] = time.perf_counter() - began
    result = ResultInfo(
        metrics=metrics, timings=timings, origin=origin, port=port_info, fidelity=fidelity, examples=sidecar,
        distill=distill,
        seeds={"python": spec.seed, "numpy": spec.seed, "torch": spec.seed, "data_order": spec.seed,
               "module_init": spec.seed if spec.condition in ("scratch", "sampled") else None,
               "origin": spec.origin_seed if spec.condition in NEEDS_ORIGIN else None},
        pairing={"eval_set": digest(task.eval.input_ids, task.eval.attention_mask, task.eval.labels),
                 "train_order": digest(*order) if steps else None})
    meta = MetaInfo.here(
        identities={"receiving_host": identity(spec.host_location(spec.receiving), out_dir),
                    "receiving_data": identity(spec.data_fields(spec.receiving_data)["source"], out_dir,
                                               repo_type="dataset")},
        machine={"hostname": platform.node(), "device": str(acc.device), "torch_threads": _threads()})
    return RunRecord(RunInfo(spec.run_id, "ok", spec.to_dict(), started, _now()), result, meta)


def refused(spec: RunSpec, exc: IncompatibleError, origin: dict | None, started: str) -> RunRecord:
    """The record of a run whose port hubport refused: a result of the study (counted, never retried)."""
    result = ResultInfo(reason=exc.one_line(), error={"type": type(exc).__name__, "message": exc.one_line()},
                        origin=origin)
    return RunRecord(RunInfo(spec.run_id, "refused", spec.to_dict(), started, _now()), result, MetaInfo.here())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _head_start(model, task, spec: RunSpec, cfg, acc, port_info: dict | None) -> tuple[int, dict | None]:
    """Steps taken before budget 0, and the record's `distill`: ported:distill's unlabelled steps (done in
    its cached port), or scratch:matched's as many labelled steps, trained here on the run's own order."""
    from hubport.engine.train import train

    if port_info is not None and "distill" in port_info:
        d = port_info["distill"]
        keep = ("steps", "seconds", "train_seconds", "teacher_seconds", "inputs", "held_out", "agreement_before",
                "agreement_after", "kl_before", "kl_after", "labels_used", "init")
        return 0, {**{k: d.get(k) for k in keep}, "data": {k: d["data"].get(k) for k in ("source", "sha256", "n")}}
    if spec.condition != MATCHED:
        return 0, None
    fit = train(model, task, spec.distill.steps, cfg, seed=spec.seed, accelerator=acc)
    return spec.distill.steps, {"steps": spec.distill.steps, "seconds": fit["seconds"], "labels_used": True,
                                "matches": "ported:distill"}


def _budgets(model, task, spec: RunSpec, cfg, acc, start: int = 0) -> tuple[dict[str, Budget], dict]:
    """Evaluate at every budget, training on from the previous one (the same model keeps its optimiser);
    `start` steps were trained before budget 0 (scratch:matched), so budget b ends at step start + b.
    Returns the metrics and, per budget, the per-example (predictions, margins) for the sidecar file."""
    from hubport.engine.evaluation import evaluate
    from hubport.engine.train import train

    model.to(acc.device)
    if spec.condition == "host":
        result = evaluate(model, task, batch_size=spec.eval_batch_size, accelerator=acc)
        return {"0": _evaluated(result, None)}, {0: (result["predictions"], result["margins"])}
    metrics, examples, reached = {}, {}, start
    for budget in sorted(spec.budgets):
        fit = None
        if start + budget > reached:
            fit = train(model, task, start + budget, cfg, seed=spec.seed, start_step=reached, accelerator=acc,
                        on_step=step_listener())
            reached = start + budget
        tick = time.perf_counter()
        result = evaluate(model, task, batch_size=spec.eval_batch_size, accelerator=acc)
        metrics[str(budget)] = _evaluated(result, fit, eval_seconds=time.perf_counter() - tick)
        examples[budget] = (result["predictions"], result["margins"])
    return metrics, examples


def _evaluated(result: dict, fit: dict | None, eval_seconds: float = math.nan) -> Budget:
    return Budget(accuracy=result["accuracy"], n=result["n"], predictions=tuple(result["predictions"]),
                  loss=fit["loss"] if fit else math.nan, train_seconds=fit["seconds"] if fit else 0.0,
                  eval_seconds=eval_seconds)


def ensure_origin(spec: RunSpec, out_dir: Path) -> tuple[str, dict]:
    """The originating module as a folder or Hub id, plus what is known of it. A referenced module is used as
    is; otherwise it is trained once per content key under out_dir/origin/<key>/ (locked, atomic)."""
    if spec.origin_module is not None:
        location = spec.location(spec.origin_module)
        return location, {"source": "reference", "module": spec.origin_module,
                          "identity": identity(location, out_dir)}
    key = origin_key(spec, out_dir)
    final = out_dir / "origin" / key
    with locked(out_dir / "origin" / f"{key}.lock"):
        info = read_json(final / "origin.json")
        if info is None:
            tmp = out_dir / "origin" / f".{key}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            info = {"source": "trained", "key": key, **_train_origin(spec, tmp / "module"),
                    "identity": {"content": key}}
            write_json(tmp / "origin.json", info)
            shutil.rmtree(final, ignore_errors=True)   # a folder without origin.json is incomplete
            os.replace(tmp, final)
            fsync_dir(final.parent)
    return str(final / "module"), info


def origin_key(spec: RunSpec, out_dir: Path) -> str:
    """Hash of host identity + data spec + module spec + train config + seed: equal keys, equal modules."""
    data = spec.data_fields(spec.origin_data)
    body = {"host": identity(spec.host_location(spec.origin), out_dir),
            "data": {**data, "source": identity(data["source"], out_dir, repo_type="dataset")},
            "module": [spec.family.name, spec.family.library, spec.family.config], "train": spec.origin_train,
            "steps": spec.origin_steps, "seed": spec.origin_seed, "format": ORIGIN_FORMAT}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=list).encode()).hexdigest()[:20]


def _train_origin(spec: RunSpec, module_dir: Path) -> dict:
    """Train the module on the originating host and data with the origin seed; save it; say how good."""
    from accelerate.utils import set_seed

    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.evaluation import evaluate
    from hubport.engine.modules import ModuleSpec, attach_new, load_host, save_module
    from hubport.engine.train import TrainConfig, make_accelerator, train

    set_seed(spec.origin_seed)
    model, tokenizer = load_host(spec.host_location(spec.origin))
    task = load_task(DataSpec(**spec.data_fields(spec.origin_data)), tokenizer)
    module = ModuleSpec.of(spec.family.name, spec.family.library, dict(spec.family.config))
    model = attach_new(model, module, spec.origin_seed)
    cfg = TrainConfig(**dict(spec.origin_train))
    acc = make_accelerator()   # precision comes per run from TrainConfig
    fit = train(model, task, spec.origin_steps, cfg, seed=spec.origin_seed, accelerator=acc,
                on_step=step_listener())
    result = evaluate(model, task, batch_size=spec.eval_batch_size, accelerator=acc)
    save_module(model, module, module_dir)
    return {"accuracy": result["accuracy"], "n": result["n"], "loss": fit["loss"], "seconds": fit["seconds"],
            "steps": spec.origin_steps, "seed": spec.origin_seed}


def _threads() -> int:
    import torch

    return torch.get_num_threads()
