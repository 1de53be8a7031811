"""Weight keys parsed into structure and rendered back.

A module tensor key is `<prefix><host module path>.<tail>`, where the host module path names a place in the T5
host: stack (encoder/decoder), block, layer, sublayer (SelfAttention, EncDecAttention, DenseReluDense) and
projection (q, k, v, o, wi, wi_0, wi_1, wo). Porting rewrites the structure, never the string.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from hubport.hosts import ATTENTION_PROJS, FFN_INTERIOR_PROJS, SUBLAYERS, ffn_layer, max_layer

_KEY = re.compile(
    r"^(?P<prefix>(?:base_model\.model\.|transformer\.)?)"
    r"(?P<stack>encoder|decoder)\.block\.(?P<block>\d+)\.layer\.(?P<layer>\d+)"
    r"(?:\.(?P<sublayer>SelfAttention|EncDecAttention|DenseReluDense))?"
    r"(?:\.(?P<proj>q|k|v|o|wi_0|wi_1|wi|wo)(?=\.))?"
    r"\.(?P<tail>.+)$"
)

__all__ = ["ATTENTION_PROJS", "FFN_INTERIOR_PROJS", "ModuleKey", "Slot", "parse_key", "slot_exists"]
_KINDS = {name: kind for kind, name in SUBLAYERS.items()}


@dataclass(frozen=True)
class Slot:
    """A place in a T5 host that a module tensor attaches to."""

    stack: str
    block: int
    layer: int
    sublayer: str | None = None
    proj: str | None = None

    def path(self, any_block: bool = False) -> str:
        """The host module path; `any_block` writes `*` for the block (to group a slot kind across layers)."""
        parts = [self.stack, "block", "*" if any_block else str(self.block), "layer", str(self.layer)]
        parts += [p for p in (self.sublayer, self.proj) if p]
        return ".".join(parts)

    @property
    def kind(self) -> str:
        """What the layer is: self-attention, cross-attention or FFN (from the T5 layer layout)."""
        if self.sublayer:
            return _KINDS[self.sublayer]
        return "ffn" if self.layer == ffn_layer(self.stack) else ("self" if self.layer == 0 else "cross")

    @property
    def ffn_interior(self) -> bool:
        """True for tensors that live in (or read from) the FFN's hidden space, whose meaning is host-specific."""
        return self.proj in FFN_INTERIOR_PROJS


@dataclass(frozen=True)
class ModuleKey:
    """A parsed module tensor key. `slot` is None for host-global tensors (prompts, peft prefixes)."""

    prefix: str
    slot: Slot | None
    tail: str

    def render(self) -> str:
        if self.slot is None:
            return f"{self.prefix}{self.tail}"
        return f"{self.prefix}{self.slot.path()}.{self.tail}"

    def with_slot(self, slot: Slot) -> ModuleKey:
        return replace(self, slot=slot)


@functools.lru_cache(maxsize=65536)
def parse_key(key: str) -> ModuleKey:
    """Split a key into prefix, host slot and family tail; keys outside the blocks get no slot (pure, so cached:
    a port of a 24-layer module looks each key up several times)."""
    m = _KEY.match(key)
    if not m:
        return ModuleKey(prefix="", slot=None, tail=key)
    slot = Slot(
        stack=m["stack"],
        block=int(m["block"]),
        layer=int(m["layer"]),
        sublayer=m["sublayer"],
        proj=m["proj"],
    )
    return ModuleKey(prefix=m["prefix"], slot=slot, tail=m["tail"])


def slot_exists(slot: Slot, host: object) -> bool:
    """Whether a host (HostSpec) has this slot: block in range, layer in the T5 layout, projection present."""
    layers = host.layers(slot.stack)  # type: ignore[attr-defined]
    if slot.block >= layers or slot.layer > max_layer(slot.stack):
        return False
    return slot.proj is None or host.has_proj(slot.proj)  # type: ignore[attr-defined]
