"""Ports and their fidelity for a run: the originating module carried onto the receiving host by hubport
(copy, a --map tier, or the copy forced past the lineage check), by a naive baseline, or distilled onto it
(hubport.distill), cached per module/host/method, and the function-level fidelity of the result
(hubport.crossmap.fidelity), cached beside it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from harness.grid.conditions import PORTED_LIKE, SAMPLED_TIERS, port_method
from harness.grid.spec import RunSpec
from harness.runs.identity import digest, identity, locked, versions
from harness.runs.io import fsync_dir, read_json, write_json
from hubport.errors import IncompatibleError, LineageError

FIDELITY_INPUTS = 256   # function fidelity on the first N evaluation inputs


def port_for(spec: RunSpec, source: str, source_identity: dict, out_dir: Path) -> tuple[Path, dict]:
    """The ported module a run starts from: its condition's port, or for `sampled` the copy port (the paper's)
    and, where hubport refuses the copy, the `weights` map; raises IncompatibleError when all refuse."""
    methods = [port_method(spec.condition)] if spec.condition in PORTED_LIKE else \
        [("map", tier) for tier in SAMPLED_TIERS]
    for i, method in enumerate(methods):
        try:
            return ensure_ported(spec, source, source_identity, out_dir, method)
        except IncompatibleError:
            if i == len(methods) - 1:
                raise
    raise AssertionError("unreachable")


def ensure_ported(spec: RunSpec, source: str, source_identity: dict, out_dir: Path,
                  method: tuple[str, str] = ("map", "copy")) -> tuple[Path, dict]:
    """The originating module ported onto the receiving host, cached per module/host/method under
    out_dir/ported/<key>/: ("map", tier) by hubport.api.port (partial ports allowed, what was dropped is in
    the report), ("naive", how) by hubport.api.port(map="naive:<how>"). A refusal is cached too, and raised again."""
    target = spec.host_location(spec.receiving)
    base = None if spec.origin_module else spec.host_location(spec.origin)   # trained on it
    body = {"module": source_identity, "target": identity(target, out_dir), "hubport": versions()["hubport"],
            "method": list(method), "base": identity(base, out_dir) if base else None}
    if method[0] == "distill":   # what the student learns from: settings, the teacher host, the inputs
        data = spec.distill_data()
        body["distill"] = {**dataclasses.asdict(spec.distill), "batch_size": dict(spec.train).get("batch_size"),
                           "template": _template(spec), "teacher": identity(spec.host_location(spec.origin), out_dir),
                           "data": {**data, "source": identity(data["source"], out_dir, repo_type="dataset")}}
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
    final = out_dir / "ported" / key
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(out_dir / "ported" / f"{key}.lock"):
        info = read_json(final / "port.json")
        if info is None:
            tmp = out_dir / "ported" / f".{key}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                if method[0] == "distill":
                    info = {"key": key, "method": list(method), **_distill(spec, source, target, tmp / "module")}
                else:
                    report = _port(method, source, target, tmp / "module", base)
                    info = {"key": key, "method": list(method), "report": report.to_dict()}
            except IncompatibleError as exc:
                info = {"key": key, "method": list(method),
                        "refused": {"type": type(exc).__name__, "message": exc.one_line()}}
            write_json(tmp / "port.json", info)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
    if "refused" in info:
        kind = LineageError if info["refused"]["type"] == "LineageError" else IncompatibleError
        raise kind(info["refused"]["message"], "")
    return final / "module", _at(info, final / "module")


def _at(info: dict, module_dir: Path) -> dict:
    """The port's info with the report's `out` at the module's final folder, not the temporary one the port
    was written in (caches written before this fix included)."""
    if "report" not in info:   # a distillation: no port report
        return info
    return {**info, "report": {**info["report"], "out": str(module_dir)}}


def _port(method: tuple[str, str], source: str, target: str, out: Path, base: str | None):
    from hubport.api import port

    kind, how = method
    strategy = f"naive:{how}" if kind == "naive" else how
    return port(source, target, out, map=strategy, allow_partial=kind == "map", force=kind == "force", base=base,
                command="harness run")


def _distill(spec: RunSpec, source: str, target: str, out: Path) -> dict:
    """A fresh module of the originating module's config on the receiving host, distilled from the originating
    host + module on unlabelled texts (labels are never read: hubport.distill.read_texts takes the text column
    only); seed 0, like every port, so all runs of a cell share it. Returns the port info's `distill` part."""
    from hubport.distill import DistillConfig, distill_module, fresh_module, read_texts

    data = spec.distill_data()
    texts, record = read_texts(data["source"], text_field=data["text_field"], split=data["split"])
    config = DistillConfig(steps=spec.distill.steps, temperature=spec.distill.temperature, lr=spec.distill.lr,
                           batch_size=int(dict(spec.train).get("batch_size", 32)), template=_template(spec),
                           max_new_tokens=spec.distill.max_new_tokens, held_out=min(200, len(texts) // 5), seed=0)
    teacher = _local(spec.host_location(spec.origin))
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh_module(_local(source), _local(target), out, seed=0)
    result = distill_module(teacher, _local(source), _local(target), out, texts, config, data=record)
    return {"distill": {**result.to_dict(), "init": "fresh"}}


def _template(spec: RunSpec) -> str:
    from hubport.engine.data import DataSpec

    return spec.data_fields(spec.receiving_data).get("template", DataSpec.template)


def ensure_fidelity(spec: RunSpec, source: str, ported_dir: Path, task) -> dict:
    """Function-level fidelity of the ported module on the first FIDELITY_INPUTS evaluation inputs: does it
    move the receiving host's label margin as the module moved the originating host's? Cached beside the port
    (it depends on neither the seed nor the training); an error is recorded, not raised (accuracy stands)."""
    from hubport.crossmap.fidelity import function_fidelity

    n = min(FIDELITY_INPUTS, len(task.eval))
    rows = task.eval.input_ids[:n], task.eval.attention_mask[:n].astype(bool)
    inputs = [[int(t) for t in ids[mask]] for ids, mask in zip(*rows)]
    labels = _label_tokens(task)
    key = digest(*rows, np.asarray(labels if labels else [-1]))
    path = ported_dir.parent / f"fidelity-{key}.json"
    with locked(ported_dir.parent.parent / f"{ported_dir.parent.name}.lock"):
        cached = read_json(path)
        if cached is not None:
            return cached
        try:
            result = function_fidelity(_local(spec.host_location(spec.origin)), _local(source),
                                       _local(spec.host_location(spec.receiving)), ported_dir, inputs,
                                       label_ids=labels, library=spec.family.library)
        except Exception as exc:   # a measurement that could not be made must not lose the run's accuracy
            lines = str(exc).strip().splitlines()
            result = {"error": f"{type(exc).__name__}: {lines[0] if lines else ''}"}
        result = {**result, "budget": 0, "inputs": n, "label_ids": list(labels) if labels else None}
        write_json(path, result)
    return result


def _label_tokens(task) -> tuple[int, int] | None:
    """The two label words' first tokens (the margin fidelity reads), or None (all logits) where there are
    more than two labels or their first tokens coincide."""
    if task.num_labels != 2 or int(task.label_ids[0, 0]) == int(task.label_ids[1, 0]):
        return None
    return int(task.label_ids[0, 0]), int(task.label_ids[1, 0])


def _local(location: str) -> str:
    """A local folder for a host or module given as a folder or a Hub id (downloaded into the HF cache)."""
    if Path(location).expanduser().exists():
        return str(Path(location).expanduser())
    from huggingface_hub import snapshot_download

    repo, _, revision = location.partition("@")
    return snapshot_download(repo, revision=revision or None)
