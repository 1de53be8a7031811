"""The map tiers (`--map embed|weights|probe`): estimate the maps a module needs and carry it (hubport.crossmap
does the estimation; hubport.port.commit writes the result like any other strategy's).

hubport.json records the tier, what every map measured, the bytes read and every tensor refused (or dropped with
--allow-partial) with the reason and residual, under `crossmap`.
"""

from __future__ import annotations

import re
import time

import numpy as np

from hubport.crossmap.hostread import HostWeights
from hubport.crossmap.maps import TIERS, MapBook
from hubport.crossmap.outcome import Outcome
from hubport.crossmap.residual import residual_lineage
from hubport.errors import IncompatibleError, LineageError
from hubport.families import generic
from hubport.port.carried import Carried, PortOptions
from hubport.port.lineage import Lineage
from hubport.port.plan import MAPS, PortPlan, TensorPlan, infer_variant, plan_for
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
    gate = 0 if options.force else residual_gate(r)
    src = HostWeights(r.base_files, r.base, f"base host {r.base_ref}")
    tgt = HostWeights(r.target_files, r.target, f"target host {r.target_ref}")
    maps = MapBook(src, tgt, tier, read_before=gate)
    if maps.residual.verdict == "none" and not options.force:
        raise LineageError(f"refusing to map: {maps.residual.message()}", _no_map_hint(r))
    return maps


def run_probe(r: Resolved, maps: MapBook, options: PortOptions) -> None:
    """The probe tier's forward passes on both hosts (after every refusal that does not need them)."""
    from hubport.crossmap.probe import collect

    if options.progress:
        options.progress("probe passes", 0, 2)
    maps.probe = collect(r.base_files.local_dir(), r.target_files.local_dir(), r.base, r.target,
                         options.probe_tokens, options.seed)
    if options.progress:
        options.progress("probe passes", 2, 2)


def copy_if_right(r: Resolved, tier: str, maps: MapBook) -> Carried | None:
    """On one lineage, where the copy carries every tensor, the copy: the maps are estimates, and where the
    copy is exact they can only add error (prefix tuning's effect, mapped by `weights` on a related pair,
    correlated -0.61 with the origin's where the copy gave +0.78)."""
    if maps.residual.verdict != "same":
        return None
    plan = plan_for(r, weights=True, similarity=False)
    if not (plan.lineage.verdict == "same" and plan.full):
        return None
    note = (f"--map {tier}: the hosts are one lineage and the copy carries every tensor, so the module was "
            "copied (a map could only add estimation error)")
    record = {"crossmap": {**maps.diagnostics(), "tier": tier, "carried": "copy", "why": note}}
    return Carried(plan, {t.key: t.target_key for t in plan.tensors}, {}, record=record, notes=(note,))


def _no_map_hint(r: Resolved) -> str:
    """What to do when no residual map exists: a vocabulary mismatch is a wrong host; shared vocabulary means
    the hosts were pretrained apart, which only distillation bridges."""
    if r.base.vocab_size != r.target.vocab_size:
        return (f"the hosts must share the T5 vocabulary ({r.base.vocab_size} vs {r.target.vocab_size} tokens); "
                "check --base and --to (--force maps anyway and records it)")
    return ("the hosts share the vocabulary but were pretrained apart; --map distill --data DATA carries the "
            "module by distillation (--force maps anyway and records it)")


def residual_gate(r: Resolved) -> int:
    """The residual fit on `check`'s bounded row sample (a few MB whatever the host's size): hosts that plainly
    share no coordinates are refused before a tier reads their weights. Only a clear failure refuses here (held-out
    R2 under half the mappable threshold, so a small sample cannot refuse a mappable pair: the sample's verdict is
    then "uncertain"); the full fit in MapBook keeps the last word."""
    sampled = residual_lineage(r.base_files, r.target_files, r.base, r.target)
    if sampled["verdict"] == "none":
        where = f" (a sample of {sampled['rows']} embedding rows, {sampled['bytes_read'] / 1e6:.1f} MB read)" \
            if sampled["sampled"] else ""
        raise LineageError(f"refusing to map: {sampled['message']}{where}", _no_map_hint(r))
    return int(sampled["bytes_read"])


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
               if isinstance(v, dict) and isinstance(v.get("residual"), int | float) and v["residual"] > POOR_RESIDUAL}
        if bad:
            worst = max(bad.values())
            out.append(f"{len(bad)} of {len(diagnostics[kind])} {what} fit poorly (residual up to {worst:.2f} > "
                       f"{POOR_RESIDUAL}): the hosts' {kind} do not correspond, so the port is unlikely to keep "
                       "the module's function; evaluate it before use")
    return out


def carry_tier(tier: str, r: Resolved, options: PortOptions, init: Carried | None = None) -> Carried:
    """Map the module with one tier's maps, refusing what the tier cannot carry unless --allow-partial."""
    import torch

    from hubport.formats import load_tensors

    started = time.perf_counter()
    if r.family.NAME == generic.NAME:  # refused before any weight is read
        r.family.map_across(r.module.library, r.module.method_config, {}, None)
    maps = open_maps(r, tier, options)
    copied = copy_if_right(r, tier, maps) if not options.force else None
    if copied is not None:
        return copied
    if tier == "probe":
        run_probe(r, maps, options)
    loaded = load_tensors(r.module)
    tensors = {k: v.detach().double().cpu().numpy() for k, v in loaded.items()}
    outcome = map_module(r, tensors, maps)
    check_refusals(outcome, options.allow_partial, len(tensors))
    dtype = next(iter(loaded.values())).dtype if loaded else torch.float32
    written = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in outcome.tensors.items()}
    record = {"crossmap": {**maps.diagnostics(), "measures": outcome.measures, "refused": outcome.refused,
                           "seconds": round(time.perf_counter() - started, 3), "written": len(outcome.tensors)}}
    record["warnings"] = poor_maps(record["crossmap"])
    forced = options.force and maps.residual.verdict == "none"
    return Carried(plan_of(r, outcome, maps), dict(outcome.kept), dict(outcome.refused), written,
                   dict(outcome.config), record, tuple(outcome.notes), forced)
