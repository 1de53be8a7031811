"""The map tiers (`--map embed|weights|probe`): estimate the maps a module needs and carry it (hubport.crossmap
does the estimation; hubport.port.commit writes the result like any other strategy's).

hubport.json records the tier, what every map measured, the bytes read and every tensor refused (or dropped with
--allow-partial) with the reason and residual, under `crossmap`.
"""

from __future__ import annotations

import time

import numpy as np

from hubport.crossmap.hostread import HostWeights
from hubport.crossmap.maps import MapBook
from hubport.crossmap.outcome import Outcome
from hubport.crossmap.residual import residual_lineage
from hubport.errors import IncompatibleError, LineageError
from hubport.families import generic
from hubport.port.carried import Carried, PortOptions
from hubport.port.lineage import Lineage
from hubport.port.plan import MAPS, PortPlan, TensorPlan, infer_variant
from hubport.port.resolve import Resolved

SHOW = 6


def map_module(r: Resolved, tensors: dict[str, np.ndarray], maps: MapBook) -> Outcome:
    """The family's own cross-host mapper (declared in its hubport.families module)."""
    return r.family.map_across(r.module.library, r.module.method_config, tensors, maps)


def open_maps(r: Resolved, tier: str, options: PortOptions) -> MapBook:
    """Both hosts' weights behind a MapBook; the residual map decides (refuses) before the probe passes run."""
    if r.base_files is None or r.base is None:
        raise LineageError("--map needs the host the module was trained on, and it is not reachable",
                           "pass --base with that host's folder or Hub id")
    if not options.force:
        residual_gate(r)
    src = HostWeights(r.base_files, r.base, f"base host {r.base_ref}")
    tgt = HostWeights(r.target_files, r.target, f"target host {r.target_ref}")
    maps = MapBook(src, tgt, tier)
    if maps.residual.verdict == "none" and not options.force:
        raise LineageError(f"refusing to map: {maps.residual.message()}",
                           "the hosts must share the T5 vocabulary; check --base and --to (--force maps anyway "
                           "and records it)")
    if tier == "probe":
        from hubport.crossmap.probe import collect

        if options.progress:
            options.progress("probe passes", 0, 2)
        maps.probe = collect(r.base_files.local_dir(), r.target_files.local_dir(), r.base, r.target,
                             options.probe_tokens, options.seed)
        if options.progress:
            options.progress("probe passes", 2, 2)
    return maps


def residual_gate(r: Resolved) -> None:
    """The residual fit on `check`'s bounded row sample (a few MB whatever the host's size): hosts that plainly
    share no coordinates are refused before a tier reads their weights. Only a clear failure refuses here (held-out
    R2 under half the mappable threshold, so a small sample cannot refuse a mappable pair: the sample's verdict is
    then "uncertain"); the full fit in MapBook keeps the last word."""
    sampled = residual_lineage(r.base_files, r.target_files, r.base, r.target)
    if sampled["verdict"] == "none":
        raise LineageError(f"refusing to map: {sampled['message']} (a sample of {sampled['rows']} embedding rows, "
                           f"{sampled['bytes_read'] / 1e6:.1f} MB read)",
                           "the hosts must share the T5 vocabulary; check --base and --to (--force maps anyway "
                           "and records it)")


def plan_of(r: Resolved, outcome: Outcome, maps: MapBook) -> PortPlan:
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
                            "--allow-partial drops them (by name, recorded in hubport.json)",
                            tuple(k for k, _ in items))


def carry_tier(tier: str, r: Resolved, options: PortOptions, init: Carried | None = None) -> Carried:
    """Map the module with one tier's maps, refusing what the tier cannot carry unless --allow-partial."""
    import torch

    from hubport.formats import load_tensors

    started = time.perf_counter()
    if r.family.NAME == generic.NAME:  # refused before any weight is read
        r.family.map_across(r.module.library, r.module.method_config, {}, None)
    maps = open_maps(r, tier, options)
    loaded = load_tensors(r.module)
    tensors = {k: v.detach().double().cpu().numpy() for k, v in loaded.items()}
    outcome = map_module(r, tensors, maps)
    check_refusals(outcome, options.allow_partial, len(tensors))
    dtype = next(iter(loaded.values())).dtype if loaded else torch.float32
    written = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in outcome.tensors.items()}
    record = {"crossmap": {**maps.diagnostics(), "measures": outcome.measures, "refused": outcome.refused,
                           "seconds": round(time.perf_counter() - started, 3), "written": len(outcome.tensors)}}
    forced = options.force and maps.residual.verdict == "none"
    return Carried(plan_of(r, outcome, maps), dict(outcome.kept), dict(outcome.refused), written,
                   dict(outcome.config), record, tuple(outcome.notes), forced)
