"""Small pieces two families share (kept here so each family module stays about its own tensors)."""

from __future__ import annotations

from hubport.hosts import FFN_IN_PROJS, STACKS, HostSpec
from hubport.keys import ModuleKey

FFN_IN = set(FFN_IN_PROJS)


def adapters_lora_retarget(method: dict, gone: set[str]) -> dict:
    """adapters' LoRA-architecture config (LoRA and IA3) with the dropped projections switched off."""
    out = dict(method)
    if gone & FFN_IN:
        out["intermediate_lora"] = False
    if "wo" in gone:
        out["output_lora"] = False
    out["attn_matrices"] = [m for m in method.get("attn_matrices", []) if m not in gone]
    return out


def adapter_leaf(key: ModuleKey, host: HostSpec) -> str | None:
    """The part of a bottleneck-family key after `adapters.<name>.`, or None when the host has no such block."""
    if key.slot is None or key.slot.block >= host.layers(key.slot.stack):
        return None
    parts = key.tail.split(".")
    if "adapters" not in parts:
        return None
    return ".".join(parts[parts.index("adapters") + 2:])


def per_layer_tier(source: HostSpec, target: HostSpec) -> str:
    """The tier a per-layer residual-stream tensor needs: `embed`, or `weights` where depths differ (a layer map)."""
    return "weights" if any(source.layers(s) != target.layers(s) for s in STACKS) else "embed"
