"""Every other method peft and adapters save on T5 (LoHa, LoKr, AdaLoRA, VeRA, OFT/BOFT, P-tuning, ConfigUnion,
LoReFT, ...), and every tensor a family has no rule for (modules_to_save copies, invertible adapters).

Within one lineage a port is a checked copy: a tensor keeps its key, so it ports wherever the target has its slot
and agrees with the module's base host on every dimension the tensor can depend on (a projection's in/out
features for tensors on a projection, the host's sizes for the rest). Nothing here is specific to a method; what
is (config retargeting, cross-host maps) stays with the families in the registry. This family is never trained by
the engine and has no cross-host mapper: `--map` refuses it by name.
"""

from __future__ import annotations

from hubport.errors import IncompatibleError
from hubport.hosts import HostSpec
from hubport.keys import ModuleKey

NAME = "generic"
LIBRARIES = ("peft", "adapters")
LAYER_FIELDS = ("d_model", "d_kv", "d_ff", "num_heads")
GLOBAL_FIELDS = LAYER_FIELDS + ("num_layers", "num_decoder_layers", "vocab_size")
ADAPTERS_ARCHITECTURES = (None, "bottleneck", "lora", "prefix_tuning", "prompt_tuning", "union", "reft")
SUMMARY_FIELDS = ("r", "init_r", "target_r", "alpha", "lora_alpha", "target_modules", "modules_to_save",
                  "num_virtual_tokens", "encoder_hidden_size", "boft_block_size", "oft_block_size",
                  "reduction_factor", "inv_adapter", "layers")


def method_name(library: str, method: dict) -> str:
    """The method as its library names it (peft_type, or adapters' architecture)."""
    if library == "peft":
        return str(method.get("peft_type", "unknown"))
    return str(method.get("architecture") or "bottleneck")


def detect(library: str, method: dict) -> bool:
    """A method its library knows: a `peft_type` of peft's PeftType, or one of adapters' architectures (peft is
    imported only here, for methods outside the registry)."""
    if library == "adapters":
        return method.get("architecture") in ADAPTERS_ARCHITECTURES
    from peft import PeftType

    return str(method.get("peft_type")) in {t.value for t in PeftType}


def differences(key: ModuleKey, source: HostSpec, target: HostSpec) -> list[str]:
    """The host dimensions this tensor may depend on that differ between the hosts, in words (empty: it fits)."""
    proj = key.slot.proj if key.slot else None
    if proj is not None:
        a = source.linear_dims(proj) if source.has_proj(proj) else None
        b = target.linear_dims(proj) if target.has_proj(proj) else None
        return [] if a == b else [f"{proj} (in, out) {a} -> {b}"]
    fields = LAYER_FIELDS if key.slot is not None else GLOBAL_FIELDS
    return [f"{f} {getattr(source, f)} -> {getattr(target, f)}" for f in fields
            if getattr(source, f) != getattr(target, f)]


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    """No rule of its own: hubport.port.plan applies the generic rule (`differences`) with both hosts."""
    return None


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    out = dict(method)
    gone = dropped - kept
    if library == "peft" and isinstance(method.get("target_modules"), list) and gone:
        out["target_modules"] = sorted(t for t in method["target_modules"] if t not in gone)
    return out


def summary(library: str, method: dict) -> dict:
    out = {"method": method_name(library, method)}
    out.update({f: method[f] for f in SUMMARY_FIELDS if method.get(f) is not None})
    if isinstance(method.get("configs"), list):
        out["members"] = [method_name(library, c) for c in method["configs"] if isinstance(c, dict)]
    return out


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    name = method_name(library, method)
    out = [(f"{library} {name}: ported by hubport's generic rule (each tensor to its own slot where the hosts "
            "agree on its dimensions); --map has no mapper for it")]
    members = summary(library, method).get("members")
    if members:
        out.append(f"a ConfigUnion of {', '.join(members)}: each member's tensors ported, the union kept")
    return out


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """No cross-host map: across lineages nothing carries these tensors faithfully."""
    return "none"


def target_fields(host: HostSpec) -> dict:
    return {}


def library_config(library: str, kwargs: dict) -> object:
    raise IncompatibleError("the engine trains only the families in hubport.families.REGISTRY",
                            "pick one of them (hubport inspect names a module's family)")


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    raise IncompatibleError(f"--map has no cross-host mapper for {library} {method_name(library, method)}",
                            "port it within its lineage (--map copy), or retrain it on the target")
