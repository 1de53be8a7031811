"""PEFT families, one module each behind one small protocol, listed in one explicit registry.

A family knows everything hubport does with its tensors: which saved configs are its own, the shape each tensor
must have on a given host (so `check` can say "maps" or "shape mismatch" from configs alone), how its config
changes when a port drops some of its tensors or moves to another host, which --map tier each tensor needs, and
its cross-host mapper. Planning, the map tiers and the engine (hubport.engine) all read REGISTRY; adding a family
is its module, its tests and one line here (docs/adding-a-family.md).
"""

from __future__ import annotations

from typing import Protocol

from hubport.errors import UnknownNameError
from hubport.families import bottleneck, compacter, generic, ia3, lora, prefix_tuning, prompt_tuning
from hubport.hosts import HostSpec
from hubport.keys import ModuleKey


class Family(Protocol):
    """What every family module provides (each is a plain module with these names)."""

    NAME: str
    LIBRARIES: tuple[str, ...]

    def detect(self, library: str, method: dict) -> bool:
        """Whether a saved config (peft's flat one, or adapters' inner `config`) is this family's."""

    def expected_shape(self, key: ModuleKey, shape: tuple[int, ...], method: dict,
                       host: HostSpec) -> tuple[int, ...] | None:
        """The shape this tensor must have on `host`, or None when hubport has no rule for the tensor."""

    def retarget(self, library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
        """The method config after dropping tensors on the named projections (and keeping the others)."""

    def summary(self, library: str, method: dict) -> dict:
        """The few hyperparameters a user wants to see in `inspect`."""

    def notes(self, library: str, method: dict, keys: list[str]) -> list[str]:
        """Known library traps this module is exposed to, in words."""

    def tier(self, key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
        """The --map tier this tensor needs between hosts of unrelated coordinates: 'embed' | 'weights' |
        'probe', or 'none' where no tier carries it faithfully."""

    def target_fields(self, host: HostSpec) -> dict:
        """The module-config fields (peft) that describe the host, as the target's values."""

    def library_config(self, library: str, kwargs: dict) -> object:
        """The library's config object for a new module of this family (peft's or adapters' own class)."""

    def map_across(self, library: str, method: dict, tensors: dict, maps: object) -> object:
        """The cross-host mapper of the `--map` tiers: float64 tensors and a crossmap MapBook -> an Outcome."""


REGISTRY: dict[str, Family] = {
    lora.NAME: lora,  # type: ignore[dict-item]
    ia3.NAME: ia3,  # type: ignore[dict-item]
    prefix_tuning.NAME: prefix_tuning,  # type: ignore[dict-item]
    prompt_tuning.NAME: prompt_tuning,  # type: ignore[dict-item]
    bottleneck.NAME: bottleneck,  # type: ignore[dict-item]
    compacter.NAME: compacter,  # type: ignore[dict-item]
}


def get_family(name: str) -> Family:
    """A family by registry name (or the generic rule, hubport.families.generic), with a did-you-mean error."""
    if name == generic.NAME:
        return generic  # type: ignore[return-value]
    if name not in REGISTRY:
        raise UnknownNameError("family", name, REGISTRY)
    return REGISTRY[name]


def detect_family(library: str, method: dict, *, generic_ok: bool = False) -> Family:
    """The family a saved module belongs to; an unknown method type is refused by name, unless `generic_ok`
    (porting, inspecting) lets the generic same-lineage rule take it."""
    for family in REGISTRY.values():
        if family.detect(library, method):
            return family
    if generic_ok and generic.detect(library, method):
        return generic  # type: ignore[return-value]
    kind = method.get("peft_type") or method.get("architecture") or "bottleneck variant"
    raise UnknownNameError(f"{library} method", str(kind), REGISTRY)
