"""hubport's Python API: inspect, check and port a module. The CLI and the harness both call these.

A thin facade over hubport.port, whose pipeline runs one way: resolve -> plan -> strategy -> commit. `port`
never leaves half a module: every strategy's result is written by hubport.port.commit into a temporary folder and
renamed into place only when everything (weights, config, provenance, verification, evaluation) succeeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubport.families import detect_family
from hubport.formats import read_module
from hubport.keys import parse_key
from hubport.port.carried import PortOptions, Progress
from hubport.port.commit import Evaluator, PortReport, check_out, commit
from hubport.port.plan import PortPlan, plan_for
from hubport.port.resolve import Resolved, resolve
from hubport.port.strategies import carry, get_strategy
from hubport.sources import fetch_module_at


def inspect(source: str | Path, *, revision: str | None = None, hub: object | None = None,
            subfolder: str | None = None) -> dict:
    """What a module is: format, family, config, the base it was trained on, parameters and tensor slots.

    A repo or folder with several modules and none named gives `modules`: each one's description by subfolder."""
    from hubport.errors import AmbiguousModuleError
    from hubport.layout import list_modules

    try:
        fetched = fetch_module_at(source, revision, hub, subfolder)
    except AmbiguousModuleError as exc:
        return {"source": exc.where, "commit": exc.commit, "modules": {
            sub: _describe(exc.root / sub, exc.where, exc.commit) for sub in list_modules(exc.root)}}
    return {**_describe(fetched.folder, fetched.ref, fetched.commit), "subfolder": fetched.subfolder}


def _describe(folder: Path, ref: str, sha: str | None) -> dict:
    module = read_module(folder)
    family = detect_family(module.library, module.method_config, generic_ok=True)
    parsed = [parse_key(k) for k in module.tensors]
    slots = sorted({p.slot.path() if p.slot else p.tail for p in parsed})
    one_per_slot = {p.slot or p.tail: p for p in parsed}.values()
    kinds = Counter(p.slot.path(any_block=True) if p.slot else p.tail for p in one_per_slot)
    return {
        "source": ref, "commit": sha, "library": module.library, "format": module.kind, "family": family.NAME,
        "config": family.summary(module.library, module.method_config), "base": module.base,
        "base_revision": module.base_revision, "parameters": module.num_parameters(),
        "tensors": len(module.tensors), "slots": slots, "slot_kinds": dict(sorted(kinds.items())),
        "notes": family.notes(module.library, module.method_config, list(module.tensors)),
        "skipped_files": list(module.skipped),
    }


def check(source: str | Path, target: str | Path, *, base: str | None = None, revision: str | None = None,
          target_revision: str | None = None, hub: object | None = None, weights: bool = True,
          similarity: bool = True, subfolder: str | None = None, deep: bool = False) -> PortPlan:
    """The report before porting; see hubport.port.plan. `weights=False` keeps it to configs and headers; by
    default the weights read are bounded samples, `deep=True` reads whole matrices and port's embedding rows."""
    r = resolve(source, target, base=base, revision=revision, target_revision=target_revision, hub=hub,
                subfolder=subfolder)
    return plan_for(r, weights=weights, similarity=similarity, deep=deep)


def port(source: str | Path, target: str | Path, out: str | Path, *, allow_partial: bool = False,
         force: bool = False, safetensors: bool | None = None, map: str = "copy", verify: bool = False,
         base: str | None = None, revision: str | None = None, target_revision: str | None = None,
         hub: object | None = None, command: str | None = None, evaluate: Evaluator | None = None,
         probe_tokens: int = PortOptions.probe_tokens, seed: int = 0, init: str | None = None,
         progress: Progress | None = None, subfolder: str | None = None,
         settings: Mapping[str, Any] | None = None) -> PortReport:
    """Port a module onto `target` with the strategy `map` (see hubport.port.strategies.STRATEGIES) and write
    it, with hubport.json, to `out` (atomically).

    `evaluate(folder, target_files)` runs on the finished module before it is moved into place; its result is
    recorded as the provenance's `evaluation` (and so in the card's model-index when pushed). `settings` are the
    strategy's own (distill: data, steps, template and any other DistillConfig field; `init` picks its start).
    """
    get_strategy(map)
    out = check_out(Path(out))
    r = resolve(source, target, base=base, revision=revision, target_revision=target_revision, hub=hub,
                subfolder=subfolder)
    options = PortOptions(allow_partial=allow_partial, force=force, probe_tokens=probe_tokens, seed=seed,
                          init=init, settings=dict(settings or {}), progress=progress)
    carried = carry(map, r, options)
    return commit(r, carried, out, strategy=map, safetensors=safetensors, command=command, verify=verify,
                  evaluate=evaluate)


__all__ = ["inspect", "check", "port", "resolve", "PortReport", "Resolved"]
