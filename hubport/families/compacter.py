"""Compacter (adapters `CompacterConfig`): a bottleneck adapter whose projections are PHM layers.

A PHM layer holds `W_left [n, in/n, rank]` and `W_right [n, rank, out/n]` (or a full `W [n, in/n, out/n]`), a bias
`b [out]` and, unless the rule is shared, its own `phm_rule [n, n, n]`. With the default `shared_phm_rule=True`,
adapters keeps the rule in `shared_parameters.<name>.phm_rule`, which `save_adapter` under `adapters.init` does not
write: such a module reloads with a fresh rule (about 1e-2 off), and hubport says so.
"""

from __future__ import annotations

from hubport.families import bottleneck
from hubport.families.bottleneck import bottleneck_dim, is_bottleneck
from hubport.families.common import adapter_leaf
from hubport.hosts import HostSpec
from hubport.keys import ModuleKey

NAME = "compacter"
LIBRARIES = ("adapters",)


def detect(library: str, method: dict) -> bool:
    return is_bottleneck(library, method) and bool(method.get("phm_layer", False))


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    tail = adapter_leaf(key, host)
    if tail is None:
        return None
    n = int(method.get("phm_dim", 4))
    d = host.d_model
    bn = bottleneck_dim(method, host, 0)
    if tail.startswith("adapter_down.0."):
        d_in, d_out, leaf = d, bn, tail.removeprefix("adapter_down.0.")
    elif tail.startswith("adapter_up."):
        d_in, d_out, leaf = bn, d, tail.removeprefix("adapter_up.")
    else:
        return None
    rank = shape[-1] if leaf == "W_left" else (shape[1] if leaf == "W_right" else 0)
    rules = {
        "W_left": (n, d_in // n, rank),
        "W_right": (n, rank, d_out // n),
        "W": (n, d_in // n, d_out // n),
        "b": (d_out,),
        "phm_rule": (n, n, n),
        "phm_rule_left": shape,
        "phm_rule_right": shape,
    }
    return rules.get(leaf)


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    return dict(method)


def summary(library: str, method: dict) -> dict:
    return {"reduction_factor": method.get("reduction_factor"), "phm_dim": method.get("phm_dim"),
            "phm_rank": method.get("phm_rank"), "shared_phm_rule": method.get("shared_phm_rule"),
            "factorized_phm_W": method.get("factorized_phm_W")}


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    if method.get("shared_phm_rule", True) and not any(k.endswith("phm_rule") for k in keys):
        return ["shared_phm_rule=true but no phm_rule was saved (an adapters bug under adapters.init): this "
                "module reloads with a freshly drawn rule, about 1e-2 off its trained self, on ANY host; "
                "retrain with shared_phm_rule=False to port it faithfully"]
    return []


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """As the bottleneck adapter it is."""
    return bottleneck.tier(key, source, target)


def target_fields(host: HostSpec) -> dict:
    """No config field of this family describes the host."""
    return {}


def library_config(library: str, kwargs: dict):
    """The adapters config for a new module; the PHM rule is per layer unless asked (a shared one is not saved)."""
    import adapters

    return adapters.CompacterConfig(**{"shared_phm_rule": False, **kwargs})


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    """The cross-host mapper (`--map` tiers): tensors as float64 arrays, maps a crossmap MapBook -> an Outcome."""
    from hubport.crossmap.fam_residual import map_residual

    return map_residual(NAME, library, method, tensors, maps)
