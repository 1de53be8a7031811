"""The report before porting: for every tensor, does it map onto the target, and if not, why.

Everything here is decided from configs and safetensors headers: a tensor maps when its slot exists on the target,
its shape there is what the family's library will build, and (between ReLU and gated hosts) it does not live in the
FFN's hidden space, whose coordinates the two FFN types do not share.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hubport.crossmap.tiers import tier_needed
from hubport.families import Family, generic
from hubport.formats import ModuleFiles
from hubport.hosts import HostSpec
from hubport.keys import ModuleKey, parse_key, slot_exists
from hubport.port.lineage import Lineage, check_lineage, residual_for
from hubport.port.resolve import Resolved
from hubport.similarity import BUDGET as SIMILARITY_BUDGET
from hubport.similarity import slot_similarity

MAPS, MISSING, MISMATCH, FFN_INTERIOR, UNKNOWN = "maps", "missing", "shape_mismatch", "ffn_interior", "unknown"
MAP_TIERS = ("copy", "embed", "weights", "probe")  # cheapest first: a tensor's tier is the least it needs


@dataclass(frozen=True)
class TensorPlan:
    """One tensor's fate: `maps` to `target_key`, or refused with a reason."""

    key: str
    status: str
    shape: tuple[int, ...]
    target_key: str | None = None
    target_shape: tuple[int, ...] | None = None
    reason: str = ""
    tier: str | None = None  # the --map tier this tensor needs (copy|embed|weights|probe|none), when known
    rule: str = ""  # whose shape rule decided: the family's name, or "generic" (hubport.families.generic)

    @property
    def proj(self) -> str | None:
        parsed = parse_key(self.key)
        return parsed.slot.proj if parsed.slot else None


@dataclass(frozen=True)
class PortPlan:
    """Everything `check` reports and `port` acts on."""

    library: str
    family: str
    source_variant: str
    target: HostSpec
    tensors: tuple[TensorPlan, ...]
    lineage: Lineage
    notes: tuple[str, ...] = ()
    similarity: dict = field(default_factory=dict)
    read: dict = field(default_factory=dict)  # what `check` read of the hosts' weights: bytes, deep or sampled

    @property
    def refused(self) -> tuple[TensorPlan, ...]:
        return tuple(t for t in self.tensors if t.status != MAPS)

    @property
    def full(self) -> bool:
        return not self.refused

    @property
    def runs(self) -> str | None:
        """The tier `port` will run without --force or --allow-partial (copy, embed, weights or probe), or None
        where every tier is refused, which leaves `--map distill`. Needs the tiers and residual map `check`
        computes; without them only the copy is judged."""
        if self.lineage.copy_is_right and self.full:
            return "copy"
        residual = self.lineage.residual or {}
        tiers = {t.tier for t in self.tensors}
        if residual.get("verdict") not in ("mapped", "same") or None in tiers or "none" in tiers:
            return None
        best = max(tiers, key=MAP_TIERS.index)
        return None if best == "copy" else best  # the copy itself was refused above

    def to_dict(self) -> dict:
        """The machine-readable report (`check --json`)."""
        return {
            "library": self.library, "family": self.family, "source_variant": self.source_variant,
            "target": self.target.describe(), "full_port_possible": self.full and self.lineage.copy_is_right,
            "runs": self.runs,
            "lineage": self.lineage.to_dict(), "counts": self.counts(), "notes": list(self.notes),
            "similarity": self.similarity, "read": self.read,
            "tensors": [{"key": t.key, "status": t.status, "shape": list(t.shape),
                         "target_shape": list(t.target_shape) if t.target_shape else None, "reason": t.reason,
                         "tier": t.tier, "rule": t.rule}
                        for t in self.tensors],
        }

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.status] = out.get(t.status, 0) + 1
        return dict(sorted(out.items()))


def infer_variant(module: ModuleFiles, source: HostSpec | None) -> str:
    """The source host's FFN type: from its config when known, else from the module's own FFN keys."""
    if source is not None:
        return source.variant
    for key in module.tensors:
        slot = parse_key(key).slot
        if slot and slot.proj in ("wi_0", "wi_1"):
            return "gated"
        if slot and slot.proj == "wi":
            return "relu"
    return "unknown"


def plan_tensor(key: str, shape: tuple[int, ...], family: Family, method: dict, target: HostSpec,
                source_variant: str, source: HostSpec | None = None) -> TensorPlan:
    parsed = parse_key(key)
    if parsed.slot is not None and not slot_exists(parsed.slot, target):
        return TensorPlan(key, MISSING, shape, reason=f"the target has no {parsed.slot.path()}")
    if parsed.slot is not None and parsed.slot.ffn_interior and source_variant not in ("unknown", target.variant):
        return TensorPlan(key, FFN_INTERIOR, shape, reason=(
            f"lives in the FFN's hidden space, which differs between {source_variant} and {target.variant} hosts"))
    expected = family.expected_shape(parsed, shape, method, target)
    if expected is None:
        return generic_plan(parsed, key, shape, family, source, target)
    expected = tuple(int(d) for d in expected)
    if expected != tuple(shape):
        return TensorPlan(key, MISMATCH, shape, target_shape=expected, rule=family.NAME,
                          reason=f"shape {list(shape)} on the source, {list(expected)} on the target")
    return TensorPlan(key, MAPS, shape, target_key=_target_key(parsed), target_shape=expected, rule=family.NAME)


def generic_plan(parsed: ModuleKey, key: str, shape: tuple[int, ...], family: Family, source: HostSpec | None,
                 target: HostSpec) -> TensorPlan:
    """The generic rule, for a tensor its family has no rule for: the same key, where the hosts agree on every
    dimension it can depend on."""
    what = "this tensor" if family.NAME == generic.NAME else f"this tensor (no {family.NAME} rule)"
    if source is None:
        return TensorPlan(key, UNKNOWN, shape, rule=generic.NAME, reason=(
            f"{what} can only be copied where the base host's dimensions are known; pass --base"))
    differ = generic.differences(parsed, source, target)
    if differ:
        return TensorPlan(key, MISMATCH, shape, rule=generic.NAME, reason=(
            f"{what} depends on host dimensions that differ ({'; '.join(differ)}) and hubport cannot resize it"))
    return TensorPlan(key, MAPS, shape, target_key=_target_key(parsed), target_shape=tuple(shape),
                      rule=generic.NAME)


def _target_key(parsed: ModuleKey) -> str:
    """Copy ports keep the structure; the key is rendered back from it (cross-host maps change the slot)."""
    return parsed.render()


TIER_ORDER = ("copy", "embed", "weights", "probe", "none")


def slot_tiers(tensors: tuple[TensorPlan, ...]) -> tuple[TensorPlan, ...]:
    """Each tensor's tier raised to its slot's highest: tensors of one slot (LoRA's A and B) port together or
    not at all, as `port --map` carries them, so `check` forecasts what `port` will do."""
    top: dict[str, int] = {}
    for t in tensors:
        if t.tier in TIER_ORDER:
            group = _slot_group(t.key)
            top[group] = max(top.get(group, 0), TIER_ORDER.index(t.tier))
    return tuple(replace(t, tier=TIER_ORDER[top[_slot_group(t.key)]]) if t.tier in TIER_ORDER else t
                 for t in tensors)


def _slot_group(key: str) -> str:
    parsed = parse_key(key)
    return parsed.slot.path() if parsed.slot else parsed.tail


def plan_port(module: ModuleFiles, family: Family, source: HostSpec | None, target: HostSpec,
              lineage: Lineage, notes: list[str], tiers: bool = True) -> PortPlan:
    variant = infer_variant(module, source)
    method = module.method_config
    tensors = tuple(plan_tensor(k, info.shape, family, method, target, variant, source)
                    for k, info in sorted(module.tensors.items()))
    if tiers and source is not None:
        same = lineage.verdict == "same"
        tensors = slot_tiers(tuple(replace(t, tier=tier_needed(t.key, family.NAME, source, target,
                                                               same_lineage=same)) for t in tensors))
    all_notes = list(notes) + family.notes(module.library, method, list(module.tensors))
    by_rule = [t.key for t in tensors if t.rule == generic.NAME and family.NAME != generic.NAME]
    if by_rule:
        all_notes.append(f"{len(by_rule)} tensor(s) outside the {family.NAME} rules, checked by the generic rule "
                         f"(e.g. {by_rule[0]})")
    if module.skipped:
        all_notes.append(f"head files are never ported: {', '.join(module.skipped)}")
    return PortPlan(module.library, family.NAME, variant, target, tensors, lineage, tuple(all_notes))


def plan_for(r: Resolved, *, weights: bool = True, similarity: bool = True, deep: bool = False) -> PortPlan:
    """The plan `check` reports (lineage, residual map, tiers, slot similarity) and the copy acts on
    (`similarity=False`: no residual map, tiers or similarity, which the copy does not need). The weights read are
    bounded samples (about as much as the copy reads, whatever the host's size) unless `deep`."""
    before = _bytes_read(r)
    lineage = check_lineage(r.base, r.target, r.base_files, r.target_files, read_weights=weights,
                            base_ref=r.base_ref, module_variant=infer_variant(r.module, None))
    if similarity and weights:
        lineage = replace(lineage, residual=residual_for(r, deep=deep))
    downloads = [n for f in (r.base_files, r.target_files) for n in getattr(f, "notes", [])]
    plan = plan_port(r.module, r.family, r.base, r.target, lineage, list(r.notes) + downloads, tiers=similarity)
    if similarity and weights and r.base_files is not None:
        plan = replace(plan, similarity=slot_similarity([t.key for t in plan.tensors], r.base_files,
                                                        r.target_files, budget=None if deep else SIMILARITY_BUDGET))
    return replace(plan, read={"bytes": _bytes_read(r) - before, "deep": deep, "weights": weights})


def _bytes_read(r: Resolved) -> int:
    return r.target_files.bytes_read() + (r.base_files.bytes_read() if r.base_files is not None else 0)
