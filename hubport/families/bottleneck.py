"""Bottleneck adapters (adapters `SeqBnConfig`/Pfeiffer and `DoubleSeqBnConfig`/Houlsby).

The saved config has no `architecture` key; the fields tell the variants apart. Tensors sit on a layer (no
projection): `adapter_down.0 [bn, d_model]`, `adapter_up [d_model, bn]`, optional layer norms `[d_model]`, with
`bn = d_model // reduction_factor`. They read and write the residual stream only, so they are never FFN-interior.
"""

from __future__ import annotations

from hubport.families.common import adapter_leaf, per_layer_tier
from hubport.hosts import HostSpec
from hubport.keys import ModuleKey

NAME = "bottleneck"
LIBRARIES = ("adapters",)


def is_bottleneck(library: str, method: dict) -> bool:
    return library == "adapters" and method.get("architecture") in (None, "bottleneck") and "reduction_factor" in method


def detect(library: str, method: dict) -> bool:
    return is_bottleneck(library, method) and not method.get("phm_layer", False)


def bottleneck_dim(method: dict, host: HostSpec, fallback: int) -> int:
    """What the library will build on this host: d_model // reduction_factor (per-layer dicts keep the source's)."""
    rf = method.get("reduction_factor")
    if isinstance(rf, (int, float)) and rf > 0:
        return int(host.d_model // rf)
    return fallback


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    tail = adapter_leaf(key, host)
    if tail is None:
        return None
    d = host.d_model
    bn = bottleneck_dim(method, host, shape[0] if tail.startswith("adapter_down") else shape[-1])
    rules = {
        "adapter_down.0.weight": (bn, d),
        "adapter_down.0.bias": (bn,),
        "adapter_up.weight": (d, bn),
        "adapter_up.bias": (d,),
        "adapter_norm_before.weight": (d,),
        "adapter_norm_before.bias": (d,),
        "adapter_norm_after.weight": (d,),
        "adapter_norm_after.bias": (d,),
        "gate.weight": (shape[0], d),
        "gate.bias": shape,
    }
    return rules.get(tail)


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    return dict(method)


def variant(method: dict) -> str:
    if method.get("mh_adapter") and method.get("output_adapter"):
        return "double_seq_bn (Houlsby)"
    return "seq_bn (Pfeiffer)" if method.get("output_adapter") else "seq_bn (attention only)"


def summary(library: str, method: dict) -> dict:
    return {"variant": variant(method), "reduction_factor": method.get("reduction_factor"),
            "non_linearity": method.get("non_linearity")}


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    return []


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """Residual-stream readers and writers: the residual map (a layer map where depths differ); layer norms and
    gates have no tier (a diagonal in the residual basis)."""
    if any(p.startswith(("adapter_norm", "gate")) for p in key.tail.split(".")):
        return "none"
    return per_layer_tier(source, target)


def target_fields(host: HostSpec) -> dict:
    """No config field of this family describes the host."""
    return {}


TYPES = ("seq_bn", "double_seq_bn")


def library_config(library: str, kwargs: dict):
    """The adapters config for a new module: `type` picks Pfeiffer (seq_bn) or Houlsby (double_seq_bn)."""
    import adapters

    from hubport.errors import UnknownNameError

    kwargs = dict(kwargs)
    kind = kwargs.pop("type", "seq_bn")
    if kind not in TYPES:
        raise UnknownNameError("bottleneck type", str(kind), TYPES)
    return (adapters.SeqBnConfig if kind == "seq_bn" else adapters.DoubleSeqBnConfig)(**kwargs)


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    """The cross-host mapper (`--map` tiers): tensors as float64 arrays, maps a crossmap MapBook -> an Outcome."""
    from hubport.crossmap.fam_residual import map_residual

    return map_residual(NAME, library, method, tensors, maps)
