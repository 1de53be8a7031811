"""Which map tier a tensor needs (for `hubport check`), from its key and the two hosts' configs alone.

The answer assumes the hosts' coordinates are unrelated (the lineage check said a copy is wrong); with
`same_lineage=True` a tensor whose host shapes agree needs only `copy`. "none" means no tier carries it
faithfully (a diagonal gain in the residual stream, whose basis the map rotates).
"""

from __future__ import annotations

from hubport.hosts import FFN_IN_PROJS, FFN_INTERIOR_PROJS as FFN_INTERIOR, HostSpec
from hubport.keys import parse_key


def _depths_differ(source: HostSpec, target: HostSpec) -> bool:
    return any(source.layers(s) != target.layers(s) for s in ("encoder", "decoder"))


def _same_shapes(source: HostSpec, target: HostSpec) -> bool:
    fields = ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "ffn")
    return all(getattr(source, f) == getattr(target, f) for f in fields)


def _lora(parts: list[str], proj: str, variant_differs: bool, residual_tier: str) -> str:
    if proj in FFN_INTERIOR:
        return "probe" if variant_differs else "weights"
    reads_residual = "lora_A" in parts and proj in ("q", "k", "v")
    writes_residual = "lora_B" in parts and proj == "o"
    return residual_tier if reads_residual or writes_residual else "weights"


def _ia3(parts: list[str], proj: str, variant_differs: bool) -> str:
    if proj in FFN_IN_PROJS or (proj == "wo" and "ia3_l" in parts):
        return "probe" if variant_differs else "weights"
    if proj in ("q", "k", "v"):
        return "weights"
    return "none"


def tier_needed(plan_tensor_key: str, family_name: str, source_spec: HostSpec, target_spec: HostSpec, *,
                same_lineage: bool = False) -> str:
    """'copy' | 'embed' | 'weights' | 'probe' | 'none' for one module tensor."""
    if same_lineage and _same_shapes(source_spec, target_spec):
        return "copy"
    parsed = parse_key(plan_tensor_key)
    slot, parts = parsed.slot, parsed.tail.split(".")
    variant_differs = source_spec.gated != target_spec.gated
    per_layer = "weights" if _depths_differ(source_spec, target_spec) else "embed"
    if family_name == "prompt_tuning":
        return "embed"
    if family_name in ("bottleneck", "compacter"):
        return "none" if any(p.startswith(("adapter_norm", "gate")) for p in parts) else per_layer
    if family_name == "prefix_tuning":
        return "weights"
    if slot is None or slot.proj is None:
        return "none"
    if family_name == "lora":
        return _lora(parts, slot.proj, variant_differs, per_layer)
    if family_name == "ia3":
        return _ia3(parts, slot.proj, variant_differs)
    return "none"
