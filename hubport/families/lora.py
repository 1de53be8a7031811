"""LoRA (peft `LORA`; adapters `architecture: lora` with additive composition).

Each adapted linear `W [out, in]` gets `A [r, in]` and `B [out, r]`; the rank is read from the tensor itself (peft's
rank_pattern may vary it per layer) and kept on the target.
"""

from __future__ import annotations

from hubport.families.common import adapters_lora_retarget, per_layer_tier
from hubport.hosts import FFN_INTERIOR_PROJS, HostSpec
from hubport.keys import ModuleKey

NAME = "lora"
LIBRARIES = ("peft", "adapters")


def detect(library: str, method: dict) -> bool:
    if library == "peft":
        return method.get("peft_type") == "LORA"
    return method.get("architecture") == "lora" and method.get("composition_mode", "add") == "add"


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    if key.slot is None or key.slot.proj is None or not host.has_proj(key.slot.proj):
        return None
    d_in, d_out = host.linear_dims(key.slot.proj)
    last = key.tail.split(".")
    if "lora_A" in last and len(shape) == 2:
        return (shape[0], d_in)
    if "lora_B" in last and len(shape) == 2:
        return (d_out, shape[1])
    if "lora_magnitude_vector" in last:
        return (d_out,)
    return None


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    out = dict(method)
    gone = dropped - kept
    if library == "peft":
        targets = method.get("target_modules")
        if isinstance(targets, list):
            out["target_modules"] = sorted(t for t in targets if t not in gone)
        return out
    return adapters_lora_retarget(method, gone)


def summary(library: str, method: dict) -> dict:
    if library == "peft":
        return {"r": method.get("r"), "alpha": method.get("lora_alpha"), "target_modules": method.get("target_modules"),
                "use_dora": method.get("use_dora", False)}
    return {"r": method.get("r"), "alpha": method.get("alpha"), "attn_matrices": method.get("attn_matrices"),
            "intermediate_lora": method.get("intermediate_lora"), "output_lora": method.get("output_lora")}


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    ffn = any(f".{p}." in k for k in keys for p in FFN_INTERIOR_PROJS)
    if not ffn:
        return []
    if library == "peft":
        return ["peft silently drops LoRA tensors on `wi` when loaded onto a gated (v1.1/Flan) host; "
                "hubport refuses such ports by name instead"]
    return ["adapters wraps `wi_1` (not `wi`) on gated hosts and loads FFN-interior LoRA partly, logging at INFO "
            "only; hubport refuses such ports by name instead"]


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """The --map tier a tensor needs across lineages: FFN-interior ones a neuron map (or a probe fit between FFN
    types), residual readers and writers the residual map, the rest head maps."""
    if key.slot is None or key.slot.proj is None:
        return "none"
    parts, proj = key.tail.split("."), key.slot.proj
    if proj in FFN_INTERIOR_PROJS:
        return "probe" if source.gated != target.gated else "weights"
    reads_residual = "lora_A" in parts and proj in ("q", "k", "v")
    writes_residual = "lora_B" in parts and proj == "o"
    return per_layer_tier(source, target) if reads_residual or writes_residual else "weights"


def target_fields(host: HostSpec) -> dict:
    """No config field of this family describes the host."""
    return {}


def library_config(library: str, kwargs: dict):
    """The library's config object for a new module (the engine attaches it)."""
    if library == "peft":
        import peft

        return peft.LoraConfig(task_type="SEQ_2_SEQ_LM", **kwargs)
    import adapters

    return adapters.LoRAConfig(**kwargs)


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    """The cross-host mapper (`--map` tiers): tensors as float64 arrays, maps a crossmap MapBook -> an Outcome."""
    from hubport.crossmap.fam_lora import map_lora

    return map_lora(library, method, tensors, maps)
