"""STRATEGIES: the one registry of ways to carry a module onto a target host, each a `Strategy` returning a Carried.

    copy              the module's tensors as they are (right within a lineage; refused across one unless forced)
    embed|weights|probe  estimated maps between the hosts, in tiers that read more and carry more (hubport.crossmap)
    distill           a student module trained on the target to match the source host + module (hubport.distill)
    naive:zero_pad    every tensor cut or zero-padded by index (a baseline for the harness)
    naive:drop        a forced, partial copy: what fits is copied, the rest dropped (a baseline for the harness)

A new strategy is one `Strategy(...)` entry here; the write path is hubport.port.commit.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from hubport.errors import IncompatibleError, LineageError, UnknownNameError
from hubport.keys import parse_key
from hubport.port.carried import Carried, PortOptions, Strategy
from hubport.port.distilled import FRESH, auto_init, carry_distill
from hubport.port.mapped import carry_tier
from hubport.port.naive import carry_zero_pad
from hubport.port.plan import MAPS, PortPlan, plan_for
from hubport.port.resolve import Resolved

SHOW = 6


def _group(key: str) -> str:
    """Tensors that only work together (LoRA's A and B on one projection) share a group: their slot."""
    parsed = parse_key(key)
    return parsed.slot.path() if parsed.slot else parsed.tail


def decide(plan: PortPlan, *, allow_partial: bool, force: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Source key -> target key for what is copied, and the keys dropped with why; raises where the copy must
    stop."""
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
            "a copy would put the module in unrelated coordinates; `hubport check` says whether --map "
            "embed|weights|probe carries it across, --map distill --data DATA carries it by distillation, "
            "--force copies anyway and records it",
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
    dropped = {t.key: t.reason or "its partner tensor on the same slot cannot port"
               for t in plan.tensors if t.key not in kept}
    if not kept:
        raise IncompatibleError("no tensor of this module ports onto the target", "see `hubport check`")
    return kept, dropped


def carry_copy(r: Resolved, options: PortOptions, init: Carried | None = None) -> Carried:
    """The copy: decided from configs, headers and the lineage check; the tensors stay the source's."""
    plan = plan_for(r, weights=True, similarity=False)
    kept, dropped = decide(plan, allow_partial=options.allow_partial, force=options.force)
    return Carried(plan, kept, dropped, forced=options.force and not plan.lineage.copy_is_right)


def carry_drop(r: Resolved, options: PortOptions, init: Carried | None = None) -> Carried:
    """The `drop` baseline: a copy forced past the lineage check, dropping whatever does not fit."""
    return carry_copy(r, replace(options, force=True, allow_partial=True))


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("copy", carry_copy, "the module's tensors as they are (same lineage)"),
    Strategy("embed", partial(carry_tier, "embed"),
             "residual map from the shared vocabulary's embeddings and the norm gains"),
    Strategy("weights", partial(carry_tier, "weights"),
             "+ head, within-head, FFN-neuron and layer maps from the host weights"),
    Strategy("probe", partial(carry_tier, "probe"),
             "+ hidden-state maps and FFN fits from forward passes on probe tokens"),
    Strategy("distill", carry_distill, "a student module on the target taught by the source host + module on "
             "unlabelled inputs (--data)", needs_init=True, default_init="auto"),
    Strategy("naive:zero_pad", carry_zero_pad, "baseline: every tensor cut or zero-padded by index"),
    Strategy("naive:drop", carry_drop, "baseline: what fits by shape copied, the rest dropped"),
)}


def get_strategy(name: str) -> Strategy:
    """A strategy by name (what --map takes), with a did-you-mean error for typos."""
    if name not in STRATEGIES:
        raise UnknownNameError("map tier", name, STRATEGIES)
    return STRATEGIES[name]


INITS = ("auto", FRESH, "copy", "embed", "weights", "probe")
"""Where a strategy that `needs_init` starts (--init): a tier's port, a fresh module, or `auto` (the tier
`check` says will run, else fresh)."""


def carry(name: str, r: Resolved, options: PortOptions) -> Carried:
    """Run a strategy, first running the one it starts from where it needs one (`needs_init`); the strategy
    sees the starting point's name as `options.init`."""
    strategy = get_strategy(name)
    if not strategy.needs_init:
        return strategy.carry(r, options, None)
    first = options.init or strategy.default_init
    if first not in INITS:
        raise UnknownNameError(f"starting point (--init) for {name}", str(first), INITS)
    plain = replace(options, init=None, settings={})  # the starting tier runs as its own port would
    if first == "auto":
        first, init = auto_init(r, plain, carry)
    else:
        init = None if first == FRESH else carry(first, r, plain)
    return strategy.carry(r, replace(options, init=first), init)
