"""hubport's Python API: inspect, check and port a module. The CLI and the harness both call these.

`port` never leaves half a module: it writes into a temporary folder beside the output and renames it into place
only when everything (weights, config, provenance, the optional verification) succeeded.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from hubport.errors import HubportError, IncompatibleError, LineageError, OutputExistsError
from hubport.families import Family, detect_family
from hubport.formats import ModuleFiles, read_module, write_json
from hubport.hosts import HostSpec, host_from_config
from hubport.keys import parse_key
from hubport.lineage import check_lineage
from hubport.hubids import bare_ref, same_repo
from hubport.plan import PortPlan, infer_variant, plan_port
from hubport.sources import HostSource, fetch_module_at, open_host


@dataclass(frozen=True)
class Resolved:
    """A module and the two hosts around it, opened but not loaded."""

    module: ModuleFiles
    module_ref: str
    module_commit: str | None
    family: Family
    base_ref: str | None
    base: HostSpec | None
    base_files: HostSource | None
    target_ref: str
    target: HostSpec
    target_files: HostSource
    notes: tuple[str, ...]
    module_subfolder: str | None = None


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
    family = detect_family(module.library, module.method_config)
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


def resolve(source: str | Path, target: str | Path, *, base: str | None = None, revision: str | None = None,
            target_revision: str | None = None, hub: object | None = None,
            subfolder: str | None = None) -> Resolved:
    """Open the module, its base host (when reachable) and the target host. Ids are kept bare (no `@rev`)."""
    fetched = fetch_module_at(source, revision, hub, subfolder)
    module = read_module(fetched.folder)
    family = detect_family(module.library, module.method_config)
    target_files = open_host(target, target_revision, hub)
    target_spec = host_from_config(target_files.config(), f"{target}'s config.json")
    target = bare_ref(target)
    notes = []
    base_ref = bare_ref(base) if base else module.base
    base_files, base_spec = None, None
    if base_ref:
        try:
            base_files = open_host(base or base_ref, None if base else module.base_revision, hub)
            base_spec = host_from_config(base_files.config(), f"{base_ref}'s config.json")
        except HubportError as exc:
            notes.append(f"the module's base '{base_ref}' is not reachable ({exc.message}); pass --base")
            base_files = None
    else:
        notes.append("the module does not record the host it was trained on; pass --base to check lineage")
    if base_ref and not same_repo(str(base_ref), str(target)) and str(base_ref) != str(target):
        notes.append(f"base-model mismatch: trained on '{base_ref}', ported to '{target}'")
    return Resolved(module, fetched.ref, fetched.commit, family, base_ref and str(base_ref), base_spec, base_files,
                    str(target), target_spec, target_files, tuple(notes), fetched.subfolder)


def check(source: str | Path, target: str | Path, *, base: str | None = None, revision: str | None = None,
          target_revision: str | None = None, hub: object | None = None, weights: bool = True,
          similarity: bool = True, subfolder: str | None = None) -> PortPlan:
    """The report before porting; see hubport.plan. `weights=False` keeps it to configs and headers."""
    r = resolve(source, target, base=base, revision=revision, target_revision=target_revision, hub=hub,
                subfolder=subfolder)
    return _plan(r, weights=weights, similarity=similarity)


def _plan(r: Resolved, weights: bool, similarity: bool) -> PortPlan:
    lineage = check_lineage(r.base, r.target, r.base_files, r.target_files, read_weights=weights,
                            base_ref=r.base_ref, module_variant=infer_variant(r.module, None))
    if similarity and weights and r.base is not None and r.base_files is not None:
        lineage = replace(lineage, residual=_residual(r))
    downloads = [n for f in (r.base_files, r.target_files) for n in getattr(f, "notes", [])]
    plan = plan_port(r.module, r.family, r.base, r.target, lineage, list(r.notes) + downloads, tiers=similarity)
    if similarity and weights and r.base_files is not None:
        from hubport.similarity import slot_similarity

        sims = slot_similarity(plan, r.base_files, r.target_files)
        plan = PortPlan(**{**plan.__dict__, "similarity": sims})
    return plan


def _residual(r: Resolved) -> dict | None:
    """The Procrustes residual map between the hosts (issue 7's lineage check), where their weights are reachable."""
    from hubport.crossmap import residual_lineage

    if not (r.base_files.weights_at_hand() and r.target_files.weights_at_hand()):
        return None
    try:
        return residual_lineage(r.base_files, r.target_files, r.base, r.target)
    except HubportError as exc:
        return {"verdict": "unknown", "message": f"no residual map: {exc.message}"}


@dataclass(frozen=True)
class PortReport:
    """What `port` did: where the module went, what was kept and dropped, and the provenance written."""

    out: Path
    plan: PortPlan
    dropped: tuple[str, ...]
    forced: bool
    provenance: dict

    def to_dict(self) -> dict:
        return {"out": str(self.out), "dropped": list(self.dropped), "forced": self.forced, **self.provenance}


def port(source: str | Path, target: str | Path, out: str | Path, *, allow_partial: bool = False,
         force: bool = False, safetensors: bool | None = None, map: str = "copy", verify: bool = False,
         base: str | None = None, revision: str | None = None, target_revision: str | None = None,
         hub: object | None = None, command: str | None = None,
         evaluate: Callable[[Path, HostSource], dict] | None = None, subfolder: str | None = None) -> PortReport:
    """Port a module onto `target` and write it, with hubport.json, to `out` (atomically).

    `evaluate(folder, target_files)` runs on the finished module before it is moved into place; its result is
    recorded as the provenance's `evaluation` (and so in the card's model-index when pushed).
    """
    from hubport.write import decide, write_port

    out = Path(out)
    if out.exists():
        raise OutputExistsError(f"{out} already exists")
    if map != "copy":
        from hubport.crossmap import port_with_map

        return port_with_map(source, target, out, map=map, allow_partial=allow_partial, safetensors=safetensors,
                             base=base, revision=revision, target_revision=target_revision, hub=hub,
                             command=command, subfolder=subfolder)
    r = resolve(source, target, base=base, revision=revision, target_revision=target_revision, hub=hub,
                subfolder=subfolder)
    plan = _plan(r, weights=True, similarity=False)
    kept, dropped = decide(plan, allow_partial=allow_partial, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.hubport-", dir=out.parent))
    try:
        provenance = write_port(r, plan, kept, dropped, tmp, safetensors=safetensors, forced=force,
                                command=command)
        if verify:
            from hubport.verify import verify_port

            provenance["verification"] = verify_port(r, tmp)
        if evaluate is not None:
            provenance["evaluation"] = evaluate(tmp, r.target_files)
        if verify or evaluate is not None:
            write_json(tmp / "hubport.json", provenance, indent=None)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PortReport(out, plan, tuple(dropped), force and not plan.lineage.copy_is_right, provenance)


__all__ = ["inspect", "check", "port", "resolve", "PortReport"]
