"""What mapping one module produced: target tensors, where each came from, what was refused and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hubport.crossmap.maps import NeedsTier
from hubport.keys import ModuleKey, Slot, parse_key

UNMAPPED_BLOCK = "no counterpart"


@dataclass
class Outcome:
    """Filled by one family's mapper; read by the writer and the report."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)       # source key -> (first) target key
    refused: dict[str, str] = field(default_factory=dict)    # source key -> reason, with the measured residual
    config: dict = field(default_factory=dict)               # method-config fields the target needs
    notes: list[str] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)  # residuals and R2 of fits, by slot

    def put(self, target: str, value: np.ndarray, sources: list[str]) -> None:
        self.tensors[target] = value
        for s in sources:
            self.kept.setdefault(s, target)

    def refuse(self, keys: list[str], why: NeedsTier | str) -> None:
        """Refuse a group of keys; a NeedsTier names the tier that would carry them."""
        if isinstance(why, NeedsTier):
            text = f"needs --map {why.tier}: {why.why}" if why.tier else f"cannot be carried: {why.why}"
        else:
            text = why
        for k in keys:
            self.refused.setdefault(k, text)
            self.kept.pop(k, None)


def moved(key: str, block: int | None = None, proj: str | None = None, layer: int | None = None) -> str:
    """A key rendered at another block (and projection / layer), via the parsed structure."""
    parsed = parse_key(key)
    slot = parsed.slot
    if slot is None:
        return key
    new = Slot(slot.stack, slot.block if block is None else block, slot.layer if layer is None else layer,
               slot.sublayer, slot.proj if proj is None else proj)
    return ModuleKey(parsed.prefix, new, parsed.tail).render()


def global_layer(stack: str, block: int, encoder_layers: int) -> int:
    """adapters' layer index (`leave_out`): encoder blocks first, then decoder blocks."""
    return block if stack == "encoder" else encoder_layers + block


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b||."""
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-300))
