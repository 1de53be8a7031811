"""Prefix tuning: two different methods under one name.

peft stores the final prefix, `prompt_embeddings [L, num_layers * 2 * token_dim]`, and applies it to decoder
self-attention only. adapters stores its re-parameterisation MLP (`wte`, `control_trans.0`, `control_trans.2`) or a
flat prefix (`control_trans [L * n_layers * 2 * d_model]`) per location (encoder self, decoder self, cross), once
per attention module plus once at the top: duplicates of one shared pool.
"""

from __future__ import annotations

from hubport.hosts import HostSpec
from hubport.keys import ModuleKey

NAME = "prefix_tuning"
LIBRARIES = ("peft", "adapters")
LOCATIONS = {"encoder_prefix": "encoder", "self_prefix": "decoder", "cross_prefix": "decoder"}


def detect(library: str, method: dict) -> bool:
    if library == "peft":
        return method.get("peft_type") == "PREFIX_TUNING"
    return method.get("architecture") == "prefix_tuning"


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    if key.slot is not None and not _slot_in_host(key, host):
        return None
    if key.tail == "prompt_embeddings":
        return (method.get("num_virtual_tokens", shape[0]), host.num_layers * 2 * host.d_model)
    parts = key.tail.split(".")
    loc = next((p for p in parts if p in LOCATIONS), None)
    if loc is None:
        return None
    d, n_layers = host.d_model, host.layers(LOCATIONS[loc])
    length = int(method.get("prefix_length", 30))
    tail = ".".join(parts[parts.index(loc) + 1:])
    out_dim = n_layers * 2 * d
    rules = {
        "wte.weight": (length, d),
        "control_trans.0.weight": (shape[0], d),
        "control_trans.0.bias": shape,
        "control_trans.2.weight": (out_dim, shape[-1]),
        "control_trans.2.bias": (out_dim,),
        "control_trans": (length * out_dim,),
    }
    return rules.get(tail)


def _slot_in_host(key: ModuleKey, host: HostSpec) -> bool:
    slot = key.slot
    return slot is not None and slot.block < host.layers(slot.stack)


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    return dict(method)


def target_fields(host: HostSpec) -> dict:
    """The peft config fields that describe the host (rewritten to the target's on a port)."""
    return {"token_dim": host.d_model, "num_layers": host.num_layers, "num_attention_heads": host.num_heads}


def summary(library: str, method: dict) -> dict:
    if library == "peft":
        return {"num_virtual_tokens": method.get("num_virtual_tokens"), "stored": "final prefix (decoder self-attn)"}
    return {"prefix_length": method.get("prefix_length"), "flat": method.get("flat"),
            "bottleneck_size": None if method.get("flat") else method.get("bottleneck_size"),
            "locations": [k for k in ("encoder_prefix", "cross_prefix") if method.get(k)] + ["self_prefix"]}


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    if library == "peft":
        return ["peft prefix tuning reaches decoder self-attention only; adapters' prefix tuning also prefixes "
                "encoder and cross-attention: the two are different models and do not convert into each other"]
    if not method.get("flat") and not any("wte" in k for k in keys):
        return ["config says flat=false but the weights hold a flat prefix (adapters' eject_prefix_tuning + "
                "save_adapter writes this); the library would reload it as garbage"]
    return []


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """Prefix keys and values need the projection weights (the virtual-residual route)."""
    return "weights"


def library_config(library: str, kwargs: dict):
    """The library's config object for a new module (the engine attaches it)."""
    if library == "peft":
        import peft

        return peft.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", **kwargs)
    import adapters

    return adapters.PrefixTuningConfig(**kwargs)


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    """The cross-host mapper (`--map` tiers): tensors as float64 arrays, maps a crossmap MapBook -> an Outcome."""
    from hubport.crossmap.fam_prefix import map_prefix

    return map_prefix(library, method, tensors, maps)
