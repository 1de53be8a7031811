"""IA3 (peft `IA3`; adapters saves it as `architecture: lora` with `composition_mode: scale`).

A learned vector rescales a linear's output ([out, 1]), or for peft's feed-forward modules its input ([1, in]).
"""

from __future__ import annotations

from hubport.families.common import adapters_lora_retarget
from hubport.hosts import FFN_IN_PROJS, FFN_INTERIOR_PROJS, HostSpec
from hubport.keys import ModuleKey

NAME = "ia3"
LIBRARIES = ("peft", "adapters")


def detect(library: str, method: dict) -> bool:
    if library == "peft":
        return method.get("peft_type") == "IA3"
    return method.get("architecture") == "lora" and method.get("composition_mode") == "scale"


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    if key.slot is None or key.slot.proj is None or not host.has_proj(key.slot.proj):
        return None
    d_in, d_out = host.linear_dims(key.slot.proj)
    parts = key.tail.split(".")
    if parts[0] == "ia3_l":
        feedforward = method.get("feedforward_modules") or []
        return (1, d_in) if key.slot.proj in feedforward else (d_out, 1)
    if "lora_B" in parts:
        return (d_out, 1)
    return None


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    out = dict(method)
    gone = dropped - kept
    if library == "peft":
        for field in ("target_modules", "feedforward_modules"):
            if isinstance(method.get(field), list):
                out[field] = sorted(t for t in method[field] if t not in gone)
        return out
    return adapters_lora_retarget(method, gone)


def summary(library: str, method: dict) -> dict:
    if library == "peft":
        return {"target_modules": method.get("target_modules"),
                "feedforward_modules": method.get("feedforward_modules")}
    return {"attn_matrices": method.get("attn_matrices"), "intermediate": method.get("intermediate_lora"),
            "output": method.get("output_lora")}


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    if any(f".{p}." in k for k in keys for p in FFN_INTERIOR_PROJS):
        return ["IA3 vectors on the FFN (wi/wo) scale the FFN's hidden units: they do not port between ReLU (v1.0) "
                "and gated (v1.1/Flan) hosts, and both libraries drop them there without an error"]
    return []


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """FFN gains need a neuron map (a probe fit between FFN types), head gains a within-head map; a gain in the
    residual stream (o, peft's non-feed-forward wo) has no tier: the map rotates its basis."""
    if key.slot is None or key.slot.proj is None:
        return "none"
    parts, proj = key.tail.split("."), key.slot.proj
    if proj in FFN_IN_PROJS or (proj == "wo" and "ia3_l" in parts):
        return "probe" if source.gated != target.gated else "weights"
    return "weights" if proj in ("q", "k", "v") else "none"


def target_fields(host: HostSpec) -> dict:
    """No config field of this family describes the host."""
    return {}


def library_config(library: str, kwargs: dict):
    """The library's config object for a new module (the engine attaches it)."""
    if library == "peft":
        import peft

        return peft.IA3Config(task_type="SEQ_2_SEQ_LM", **kwargs)
    import adapters

    return adapters.IA3Config(**kwargs)


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    """The cross-host mapper (`--map` tiers): tensors as float64 arrays, maps a crossmap MapBook -> an Outcome."""
    from hubport.crossmap.fam_ia3 import map_ia3

    return map_ia3(library, method, tensors, maps)
