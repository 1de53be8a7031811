"""Cross-host porting: carry a PEFT module across hosts whose coordinates differ (the `--map` tiers).

A copy is right only within a lineage. Between separately pretrained hosts (t5-base -> flan-t5-base), FFN types
(ReLU `wi` vs gated `wi_0`/`wi_1`) and sizes (base <-> large), hubport estimates maps between the two hosts,
training-free, in tiers that read more and carry more:

    embed    residual map from the shared vocabulary's embeddings and the RMSNorm gains
    weights  + head, within-head, FFN-neuron and layer maps from the attention and FFN weights
    probe    + per-layer hidden-state maps and closed-form FFN fits from forward passes on probe tokens

Estimation only (the port itself is hubport.port): hostread (reading), residual / heads / layers / neurons
(estimation), maps (MapBook, per tier), probe and ffnfit (the probe tier), fam_* (one mapper per family, each
declared by its family module as `map_across`), tiers (which tier a tensor needs), fidelity (function-level
fidelity). Nothing here imports hubport.api or hubport.port.
"""

from __future__ import annotations

from hubport.crossmap.maps import TIERS
from hubport.crossmap.residual import residual_lineage
from hubport.crossmap.tiers import tier_needed

__all__ = ["TIERS", "residual_lineage", "tier_needed"]
