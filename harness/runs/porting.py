"""Ports and their fidelity for a run: the originating module carried onto the receiving host by hubport
(copy or a --map tier) or by a naive baseline, cached per module/host/method, and the function-level fidelity
of the result (hubport.crossmap.fidelity), cached beside it."""

from __future__ import annotations

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
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
    final = out_dir / "ported" / key
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(out_dir / "ported" / f"{key}.lock"):
        info = read_json(final / "port.json")
        if info is None:
            tmp = out_dir / "ported" / f".{key}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
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
    return {**info, "report": {**info["report"], "out": str(module_dir)}}


def _port(method: tuple[str, str], source: str, target: str, out: Path, base: str | None):
    from hubport.api import port

    kind, how = method
    strategy = f"naive:{how}" if kind == "naive" else how
    return port(source, target, out, map=strategy, allow_partial=kind != "naive", base=base, command="harness run")


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
