"""`hubport port --map embed|weights|probe`: estimate the maps a module needs, carry it, write it atomically.

The output is the module in its own library's format, loadable by that library onto the target, with hubport.json
recording the tier, what every map measured, the bytes read and every tensor refused (or dropped with
--allow-partial) with the reason and residual.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hubport.crossmap.hostread import HostWeights
from hubport.crossmap.maps import TIERS, MapBook
from hubport.crossmap.outcome import Outcome
from hubport.errors import IncompatibleError, LineageError, UnknownNameError
from hubport.lineage import Lineage
from hubport.plan import MAPS, PortPlan, TensorPlan, infer_variant

SHOW = 6
PROBE_TOKENS = 4096


def map_module(family: str, library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> Outcome:
    """Dispatch to the family's mapper."""
    if family == "lora":
        from hubport.crossmap.fam_lora import map_lora

        return map_lora(library, method, tensors, maps)
    if family == "ia3":
        from hubport.crossmap.fam_ia3 import map_ia3

        return map_ia3(library, method, tensors, maps)
    if family == "prefix_tuning":
        from hubport.crossmap.fam_prefix import map_prefix

        return map_prefix(library, method, tensors, maps)
    from hubport.crossmap.fam_residual import map_residual

    return map_residual(family, library, method, tensors, maps)


def open_maps(r, tier: str, probe_tokens: int = PROBE_TOKENS, seed: int = 0) -> MapBook:
    """Both hosts' weights behind a MapBook (and the probe passes for `probe`)."""
    if r.base_files is None or r.base is None:
        raise LineageError("--map needs the host the module was trained on, and it is not reachable",
                           "pass --base with that host's folder or Hub id")
    src = HostWeights(r.base_files, r.base, f"base host {r.base_ref}")
    tgt = HostWeights(r.target_files, r.target, f"target host {r.target_ref}")
    probe = None
    if tier == "probe":
        from hubport.crossmap.probe import collect

        probe = collect(r.base_files.local_dir(), r.target_files.local_dir(), r.base, r.target, probe_tokens, seed)
    maps = MapBook(src, tgt, tier, probe)
    if maps.residual.verdict == "none":
        raise LineageError(f"refusing to map: {maps.residual.message()}",
                           "the hosts must share the T5 vocabulary; check --base and --to")
    return maps


def as_numpy(module) -> tuple[dict[str, np.ndarray], dict]:
    """A module's tensors as float64 numpy, and their torch dtypes (to write back in kind)."""
    from hubport.formats import load_tensors

    loaded = load_tensors(module)
    return {k: v.detach().double().cpu().numpy() for k, v in loaded.items()}, {k: v.dtype for k, v in loaded.items()}


def plan_of(r, outcome: Outcome, maps: MapBook) -> PortPlan:
    """The port as a PortPlan (for PortReport and provenance): one TensorPlan per source tensor."""
    rows = []
    for key, info in sorted(r.module.tensors.items()):
        if key in outcome.kept:
            rows.append(TensorPlan(key, MAPS, tuple(info.shape), outcome.kept[key],
                                   tuple(outcome.tensors[outcome.kept[key]].shape)))
        else:
            reason = outcome.refused.get(key, "not carried")
            status = "needs_map" if reason.startswith("needs --map") else "not_carried"
            rows.append(TensorPlan(key, status, tuple(info.shape), reason=reason))
    res = maps.residual
    lineage = Lineage("same" if res.verdict == "same" else "different", "weights", (res.message(),),
                      bytes_read=maps.bytes_read())
    return PortPlan(r.module.library, r.family.NAME, infer_variant(r.module, r.base), r.target, tuple(rows),
                    lineage, tuple(r.notes) + tuple(outcome.notes))


def check_refusals(outcome: Outcome, allow_partial: bool, total: int) -> None:
    if not outcome.refused or allow_partial:
        if not outcome.tensors:
            raise IncompatibleError("no tensor of this module can be carried onto the target", "see hubport.json "
                                    "notes or run with a higher --map tier")
        return
    items = sorted(outcome.refused.items())
    names = "; ".join(f"{k} ({why})" for k, why in items[:SHOW])
    more = f" and {len(items) - SHOW} more" if len(items) > SHOW else ""
    raise IncompatibleError(f"{len(items)} of {total} tensors cannot be carried: {names}{more}",
                            refusal_hint(outcome.refused, partial_leaves_some=bool(outcome.tensors)),
                            tuple(k for k, _ in items))


def refusal_hint(refused: dict[str, str], partial_leaves_some: bool) -> str:
    """Name only options that would work: the higher tier the reasons ask for, and --allow-partial only when
    something would be left to write."""
    asked = sorted({m.group(1) for why in refused.values() for m in [re.search(r"needs --map (\w+)", why)] if m},
                   key=lambda t: TIERS.index(t) if t in TIERS else len(TIERS))
    hints = [f"--map {asked[-1]} carries them"] if asked else []
    if partial_leaves_some:
        hints.append("--allow-partial drops them (by name, recorded in hubport.json)")
    return "; ".join(hints) or "no map tier carries these tensors; see `hubport check` for each one's reason"


POOR_RESIDUAL = 0.5


def poor_maps(diagnostics: dict) -> list[str]:
    """Warnings for the summary: head or neuron maps that explain little (relative residual above
    POOR_RESIDUAL), where the carried module is a guess however cleanly it was written."""
    out = []
    for kind, what in (("attn", "head maps"), ("neurons", "neuron maps")):
        bad = {k: v["residual"] for k, v in diagnostics.get(kind, {}).items()
               if isinstance(v, dict) and isinstance(v.get("residual"), (int, float)) and v["residual"] > POOR_RESIDUAL}
        if bad:
            worst = max(bad.values())
            out.append(f"{len(bad)} of {len(diagnostics[kind])} {what} fit poorly (residual up to {worst:.2f} > "
                       f"{POOR_RESIDUAL}): the hosts' {kind} do not correspond, so the port is unlikely to keep "
                       "the module's function; evaluate it before use")
    return out


def write_mapped(r, outcome: Outcome, dtypes: dict, folder: Path, kind: str) -> None:
    """Weights (in the source's dtype) and the retargeted config into `folder`."""
    import torch

    from hubport.formats import CONFIG_FILE, write_json, write_weights
    from hubport.write import retarget_config

    dtype = next(iter(dtypes.values()), torch.float32)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in outcome.tensors.items()}
    write_weights(r.module, {k: k for k in tensors}, folder, kind, tensors=tensors)
    dropped = sorted(outcome.refused)
    config = retarget_config(r, outcome.kept, dropped)
    method = config if r.module.library == "peft" else config["config"]
    method.update(outcome.config)
    write_json(folder / CONFIG_FILE, config)


def port_with_map(source: str | Path, target: str | Path, out: str | Path, *, map: str, allow_partial: bool = False,
                  safetensors: bool | None = None, base: str | None = None, revision: str | None = None,
                  target_revision: str | None = None, hub: object | None = None, command: str | None = None,
                  probe_tokens: int = PROBE_TOKENS, seed: int = 0, subfolder: str | None = None):
    """Port with estimated maps (tier `map`); same arguments as hubport.api.port. Returns a PortReport."""
    from hubport.api import PortReport, resolve
    from hubport.formats import write_json
    from hubport.write import provenance_record

    if map not in TIERS[1:]:
        raise UnknownNameError("map tier", map, TIERS)
    started = time.perf_counter()
    out = Path(out)
    r = resolve(source, target, base=base, revision=revision, target_revision=target_revision, hub=hub,
                subfolder=subfolder)
    maps = open_maps(r, map, probe_tokens, seed)
    tensors, dtypes = as_numpy(r.module)
    outcome = map_module(r.family.NAME, r.module.library, r.module.method_config, tensors, maps)
    check_refusals(outcome, allow_partial, len(tensors))
    plan = plan_of(r, outcome, maps)
    kind = r.module.kind if safetensors is None else ("safetensors" if safetensors else "bin")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.hubport-", dir=out.parent))
    try:
        write_mapped(r, outcome, dtypes, tmp, kind)
        dropped = sorted(outcome.refused)
        record = provenance_record(r, plan, outcome.kept, dropped, forced=False, command=command, kind=kind,
                                   map_tier=map)
        record["crossmap"] = {**maps.diagnostics(), "measures": outcome.measures, "refused": outcome.refused,
                              "seconds": round(time.perf_counter() - started, 3), "written": len(outcome.tensors)}
        record["warnings"] = poor_maps(record["crossmap"])
        write_json(tmp / "hubport.json", record)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PortReport(out, plan, tuple(dropped), False, record)
