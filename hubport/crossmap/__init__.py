"""Cross-host porting: carry a PEFT module across hosts whose coordinates differ.

A copy is right only within a lineage. Between separately pretrained hosts (t5-base -> flan-t5-base), FFN types
(ReLU `wi` vs gated `wi_0`/`wi_1`) and sizes (base <-> large), hubport estimates maps between the two hosts,
training-free, in tiers that read more and carry more:

    embed    residual map from the shared vocabulary's embeddings and the RMSNorm gains
    weights  + head, within-head, FFN-neuron and layer maps from the attention and FFN weights
    probe    + per-layer hidden-state maps and closed-form FFN fits from forward passes on probe tokens

Modules: hostread (reading), residual / heads / layers / neurons (estimation), maps (MapBook, per tier),
probe and ffnfit (the probe tier), fam_* (one mapper per family), port (the port), tiers, naive (baselines for
the harness), fidelity (function-level fidelity).
"""

from __future__ import annotations

from hubport.crossmap.maps import TIERS
from hubport.crossmap.residual import residual_lineage
from hubport.crossmap.tiers import tier_needed


def port_with_map(*args, **kwargs):
    """See hubport.crossmap.port.port_with_map."""
    from hubport.crossmap.port import port_with_map as run

    return run(*args, **kwargs)


def naive_port(*args, **kwargs):
    """See hubport.crossmap.naive.naive_port."""
    from hubport.crossmap.naive import naive_port as run

    return run(*args, **kwargs)


def function_fidelity(*args, **kwargs):
    """See hubport.crossmap.fidelity.function_fidelity."""
    from hubport.crossmap.fidelity import function_fidelity as run

    return run(*args, **kwargs)


__all__ = ["TIERS", "port_with_map", "residual_lineage", "tier_needed", "naive_port", "function_fidelity"]
