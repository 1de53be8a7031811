"""Turning a port plan into files: what to keep, the retargeted config, the weights and the provenance."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hubport import __version__
from hubport.errors import IncompatibleError, LineageError
from hubport.formats import CONFIG_FILE, write_json, write_weights
from hubport.keys import parse_key
from hubport.plan import MAPS, PortPlan

if TYPE_CHECKING:
    from hubport.api import Resolved

SHOW = 6


def _group(key: str) -> str:
    """Tensors that only work together (LoRA's A and B on one projection) share a group: their slot."""
    parsed = parse_key(key)
    return parsed.slot.path() if parsed.slot else parsed.tail


def decide(plan: PortPlan, *, allow_partial: bool, force: bool) -> tuple[dict[str, str], list[str]]:
    """Source key -> target key for what is written, and the keys dropped; raises where the port must stop."""
    if plan.lineage.verdict == "unknown" and not force:
        raise LineageError(
            f"refusing to copy: {plan.lineage.describe()}",
            "pass --base with the host it was trained on (folder or Hub id) so that hubport can measure the "
            "lineage, or --force to copy anyway (recorded in hubport.json)", plan.lineage.reasons)
    if plan.lineage.level == "module" and not force:
        raise LineageError(
            f"refusing to copy: {plan.lineage.describe()}",
            "a copy would put the module in unrelated coordinates; --map embed|weights|probe carries it across "
            "once --base names the host it was trained on; --force copies anyway and records it",
            plan.lineage.reasons)
    if not plan.lineage.copy_is_right and not force:
        raise LineageError(
            f"refusing to copy: {plan.lineage.describe()}",
            "a copy would put the module in unrelated coordinates; --map embed|weights|probe carries it across "
            "(see `hubport check`), --force copies anyway and records it",
            plan.lineage.reasons)
    refused = plan.refused
    if refused and not allow_partial:
        names = ", ".join(f"{t.key} ({t.status})" for t in refused[:SHOW])
        more = f" and {len(refused) - SHOW} more" if len(refused) > SHOW else ""
        raise IncompatibleError(
            f"{len(refused)} of {len(plan.tensors)} tensors cannot port: {names}{more}",
            "run `hubport check` for the reasons; --allow-partial drops them and says which" if
            len(refused) < len(plan.tensors) else "nothing would be left to write, so --allow-partial cannot "
            "help; run `hubport check` for each tensor's reason and the --map tier it needs",
            tuple(t.key for t in refused))
    bad_groups = {_group(t.key) for t in refused}
    kept = {t.key: t.target_key for t in plan.tensors
            if t.status == MAPS and _group(t.key) not in bad_groups and t.target_key}
    dropped = sorted(t.key for t in plan.tensors if t.key not in kept)
    if not kept:
        raise IncompatibleError("no tensor of this module ports onto the target", "see `hubport check`")
    return kept, dropped


def _projs(keys: list[str] | set[str] | dict) -> set[str]:
    return {p for p in (parse_key(k).slot.proj if parse_key(k).slot else None for k in keys) if p}


def retarget_config(r: Resolved, kept: dict[str, str], dropped: list[str]) -> dict:
    """The module config for the target: its base recorded, host-derived fields updated, dropped slots removed."""
    config = dict(r.module.config)
    method = r.family.retarget(r.module.library, r.module.method_config, _projs(dropped), _projs(kept))
    host_fields = getattr(r.family, "target_fields", None)
    if r.module.library == "peft":
        config.update(method)
        config["base_model_name_or_path"] = r.target_ref
        config["revision"] = getattr(r.target_files, "revision", None)
        if host_fields:
            config.update(host_fields(r.target))
    else:
        config["config"] = method
        config["model_name"] = r.target_ref
        config["hidden_size"] = r.target.d_model
    return config


def write_port(r: Resolved, plan: PortPlan, kept: dict[str, str], dropped: list[str], out: Path, *,
               safetensors: bool | None, forced: bool, command: str | None) -> dict:
    """Write weights, config and hubport.json into `out` (a fresh temporary folder); return the provenance."""
    kind = r.module.kind if safetensors is None else ("safetensors" if safetensors else "bin")
    write_weights(r.module, kept, out, kind)
    write_json(out / CONFIG_FILE, retarget_config(r, kept, dropped))
    provenance = provenance_record(r, plan, kept, dropped, forced=forced, command=command, kind=kind)
    write_json(out / "hubport.json", provenance, indent=None)
    return provenance


def provenance_record(r: Resolved, plan: PortPlan, kept: dict[str, str], dropped: list[str], *, forced: bool,
                      command: str | None, kind: str, map_tier: str = "copy") -> dict:
    """Where the module came from and what happened to every tensor (never any token)."""
    return {
        "hubport_version": __version__,
        "command": command if command is not None else shlex.join(["hubport", *sys.argv[1:]]),
        "map": map_tier,
        "source": {"ref": r.module_ref, "commit": r.module_commit, "library": r.module.library,
                   "family": r.family.NAME, "format": r.module.kind, "base": r.base_ref,
                   "base_revision": r.module.base_revision, "subfolder": getattr(r, "module_subfolder", None)},
        "target": {"ref": r.target_ref, "commit": getattr(r.target_files, "revision", None),
                   "config_hash": r.target.config_hash, "host": r.target.describe()},
        "lineage": plan.lineage.to_dict(),
        "forced": forced and not plan.lineage.copy_is_right,
        "written_format": kind,
        "slot_map": {"counts": plan.counts(), "kept": len(kept), "dropped": len(dropped),
                     "tensors": [{"key": t.key, "status": t.status, "target_key": kept.get(t.key),
                                  "reason": t.reason} for t in plan.tensors]},
        "dropped": dropped,
        "notes": list(plan.notes),
        "evaluation": None,
    }
